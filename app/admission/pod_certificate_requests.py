"""NodeRestriction on podcertificaterequests (upstream ``admitPodCertificateRequest``). Pure, no I/O.

Upstream (1.34+, ``plugin/pkg/admission/noderestriction/admission.go``) checks,
in order: the PodCertificateRequest gate, CREATE without subresource, the
object's type, ``spec.nodeName`` is the requesting node, the node's UID, the
pod's existence, UID and node, that it is not a mirror pod, and the service
account's name and UID. nodeauthz's store holds neither pods' service accounts
and mirror flags nor ServiceAccounts, so after the checks the request alone
answers it refuses (fails closed): admitting would let a node ask for a
certificate for any service account in the pod's namespace.
"""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.objects import spec, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_str

UNVERIFIABLE = (
    "nodeauthz cannot verify the pod and service account of a PodCertificateRequest "
    "(its store does not hold service accounts); refused"
)


def admit_pod_certificate_request(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    if not options.pod_certificate_requests:
        raise Forbidden("PodCertificateRequest feature gate is disabled")
    if r.operation != "CREATE":
        raise Forbidden(f"unexpected operation {r.operation}")
    if r.sub_resource:
        raise Forbidden(f"unexpected subresource {r.sub_resource}")
    request = typed(r, r.object, "PodCertificateRequest")
    node_name = get_str(spec(request), "nodeName", "spec")
    if node_name != node:
        raise Forbidden(
            f"PodCertificateRequest.Spec.NodeName={go_quote(node_name)}, "
            f"which is not the requesting node {go_quote(node)}"
        )
    raise Forbidden(UNVERIFIABLE)
