"""NodeRestriction on podcertificaterequests (upstream ``admitPodCertificateRequest``). Pure, no I/O.

Upstream (1.34+, ``plugin/pkg/admission/noderestriction/admission.go``) checks,
in order: the PodCertificateRequest gate, CREATE without subresource, the
object's type, ``spec.nodeName`` is the requesting node and its UID the node's,
the pod exists with ``spec.podUID`` on that node and is not a mirror pod, the
service account name is the pod's and its UID the service account's. A UID
mismatch or a missing object may be informer lag, so upstream answers those with
a plain (retryable) error, not Forbidden (``Retryable``).

Since kubernetes#140006 (2026) the signer must also be one the pod mounts a
``podCertificate`` projected volume for, else the API server's authorizer must
allow verb ``request-podcertificate-signer`` on the signer name. That change's
code could not be read; the attributes follow its release note and the
refusal text is nodeauthz's (README: "left out").
"""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.objects import authorize_requester, spec, typed, unauthorized
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden, Retryable
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_str

SIGNER_VERB = "request-podcertificate-signer"


def admit_pod_certificate_request(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    if not options.pod_certificate_requests:
        raise Forbidden("PodCertificateRequest feature gate is disabled")
    if r.operation != "CREATE":
        raise Forbidden(f"unexpected operation {r.operation}")
    if r.sub_resource:
        raise Forbidden(f"unexpected subresource {r.sub_resource}")
    pcr = spec(typed(r, r.object, "PodCertificateRequest"))
    node_name = get_str(pcr, "nodeName", "spec")
    pod_name = get_str(pcr, "podName", "spec")
    pod_ref = go_quote(f"{r.namespace}/{pod_name}")
    if node_name != node:
        raise Forbidden(
            f"PodCertificateRequest.Spec.NodeName={go_quote(node_name)}, "
            f"which is not the requesting node {go_quote(node)}"
        )
    node_uid = lookups.node_uid(node_name)
    if node_uid is None:
        raise _not_found(f"node {go_quote(node_name)}", "node", node_name)
    if node_uid != get_str(pcr, "nodeUID", "spec"):
        raise Retryable(
            f"PodCertificateRequest for pod {pod_ref} names node UID {go_quote(get_str(pcr, 'nodeUID', 'spec'))}, "
            f"inconsistent with the running node ({go_quote(node_uid)})"
        )
    record = lookups.pod(r.namespace, pod_name)
    if record is None:
        raise _not_found(f"pod {pod_ref}", "pod", pod_name)
    pod_uid = get_str(pcr, "podUID", "spec")
    if pod_uid != record.uid:
        raise Retryable(
            f"PodCertificateRequest for pod {pod_ref} contains pod UID ({go_quote(pod_uid)}) "
            f"which differs from running pod {go_quote(record.uid)}"
        )
    if record.node_name != node_name:
        raise Forbidden(
            f"pod {pod_ref} is not running on node {go_quote(node_name)} named in the PodCertificateRequest"
        )
    facts = lookups.pod_facts(record)
    if facts.mirror:
        raise Forbidden(f"pod {pod_ref} is a mirror pod")
    sa_name = get_str(pcr, "serviceAccountName", "spec")
    if sa_name != facts.service_account:
        # Not informer lag: the pod's UID matched, and a pod's service account never changes.
        raise Forbidden(
            f"PodCertificateRequest for pod {pod_ref} contains serviceAccountName ({go_quote(sa_name)}) "
            f"that differs from running pod ({go_quote(facts.service_account)})"
        )
    sa_uid = lookups.service_account_uid(r.namespace, sa_name)
    if sa_uid is None:
        raise _not_found(f"service account {go_quote(f'{r.namespace}/{sa_name}')}", "serviceaccount", sa_name)
    requested_sa_uid = get_str(pcr, "serviceAccountUID", "spec")
    if requested_sa_uid != sa_uid:
        raise Retryable(
            f"PodCertificateRequest for pod {pod_ref} names service account UID {go_quote(requested_sa_uid)}, "
            f"which differs from the running service account ({go_quote(sa_uid)})"
        )
    signer = get_str(pcr, "signerName", "spec")
    if signer in facts.signers:
        return
    answer = authorize_requester(r, lookups, SIGNER_VERB, signer, sa_name)
    if not answer.allowed:
        raise unauthorized(
            f"signer {go_quote(signer)}", r, answer, "request pod certificates for this signer"
        )


def _not_found(what: str, kind: str, name: str) -> Retryable:
    """Upstream's wrapped NotFound for an object the request names: maybe informer lag, so retryable."""
    return Retryable(
        f"while retrieving {what} named in the PodCertificateRequest: {kind} {go_quote(name)} not found", 404
    )
