"""NodeRestriction rules for everything but pods. Pure, no I/O besides the lookups passed in.

Each rule takes the request, the node's name, the lookups and the options, and
raises ``Forbidden(reason)`` or ``NotFound(resource, name)``; ``app.admission.restriction``
turns those into upstream's full message. Returning means admitted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.admission.certificate_signing_requests import csr_refusal
from app.admission.node_labels import forbidden_labels, modified_labels
from app.admission.review import AdmissionRequest
from app.admission.semantic_diff import semantic_equal, structural_diff
from app.k8s.goquote import go_quote
from app.k8s.pod_references import FieldError, get_map, get_str

if TYPE_CHECKING:
    from app.admission.restriction import AdmissionLookups

NODE_LEASE_NAMESPACE = "kube-node-lease"


class Forbidden(Exception):
    """Upstream ``admission.NewForbidden(a, errors.New(reason))``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(Exception):
    """Upstream returning a lister's NotFound as is: ``<resource> "<name>" not found``."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} {go_quote(name)} not found")
        self.resource = resource
        self.name = name


class AudiencePolicy(enum.Enum):
    """What to do with a TokenRequest for one non-empty audience (zero audiences or "" always pass).

    Upstream allows it when the pod's volumes use the audience, else asks the
    authorizer; nodeauthz can check neither. ``ALLOW`` admits it (upstream's
    behaviour with the gate off; the in-tree plugin, when enabled, still checks).
    ``DEFAULT_ONLY`` refuses it, which also refuses legitimate custom audiences
    (service meshes, cloud workload identity, CSI token requests).
    """

    ALLOW = "allow"
    DEFAULT_ONLY = "default-only"


@dataclass(frozen=True)
class AdmissionOptions:
    """Upstream feature gates the rules depend on, at their Kubernetes 1.34 defaults."""

    service_account_node_audience_restriction: bool = True
    single_audience: AudiencePolicy = AudiencePolicy.ALLOW
    recover_volume_expansion_failure: bool = True
    allow_insecure_kubelet_csrs: bool = False


DEFAULT_OPTIONS = AdmissionOptions()

# Go's %T of the internal type upstream asserts on, by API group.
_GO_PACKAGES = {
    "": "core",
    "policy": "policy",
    "authentication.k8s.io": "authentication",
    "coordination.k8s.io": "coordination",
    "storage.k8s.io": "storage",
    "resource.k8s.io": "resource",
    "certificates.k8s.io": "certificates",
}


def _kind_of(obj: Mapping[str, Any], request: AdmissionRequest) -> tuple[str, str]:
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if isinstance(kind, str) and kind and isinstance(api_version, str):
        return (api_version.split("/")[0] if "/" in api_version else ""), kind
    return request.kind.group, request.kind.kind


def typed(
    request: AdmissionRequest,
    obj: Mapping[str, Any] | None,
    kind: str,
    *,
    reported: Mapping[str, Any] | None = None,
) -> Mapping[str, Any]:
    """``obj`` if it is a ``kind``, else upstream's ``unexpected type %T`` refusal.

    ``reported`` is the object named in the message (upstream names the new
    object when the old node has the wrong type).
    """
    if obj is not None and _kind_of(obj, request)[1] == kind:
        return obj
    shown = obj if reported is None else reported
    if shown is None:
        raise Forbidden("unexpected type <nil>")
    group, shown_kind = _kind_of(shown, request)
    raise Forbidden(f"unexpected type *{_GO_PACKAGES.get(group, group.split('.')[0])}.{shown_kind}")


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(obj, "metadata", "") or {}


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(obj, "spec", "") or {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(meta(obj), "labels", "metadata") or {}


def admit_node(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    """nodes and nodes/status alike: own Node only, no configSource, no taint or restricted label changes."""
    q = go_quote(node)
    if r.name != node:
        raise Forbidden(f"node {q} is not allowed to modify node {go_quote(r.name)}")
    if r.operation == "CREATE":
        new = typed(r, r.object, "Node")
        if spec(new).get("configSource") is not None:
            raise Forbidden(f"node {q} is not allowed to create pods with a non-nil configSource")  # sic
        if bad := forbidden_labels(_labels(new)):
            raise Forbidden(f"node {q} is not allowed to set the following labels: {', '.join(bad)}")
    elif r.operation == "UPDATE":
        new = typed(r, r.object, "Node")
        old = typed(r, r.old_object, "Node", reported=r.object)
        config = spec(new).get("configSource")
        if config is not None and not semantic_equal(config, spec(old).get("configSource")):
            raise Forbidden(f"node {q} is not allowed to update configSource to a new non-nil configSource")
        if not semantic_equal(spec(new).get("taints"), spec(old).get("taints")):
            raise Forbidden(f"node {q} is not allowed to modify taints")
        if bad := forbidden_labels(modified_labels(_labels(new), _labels(old))):
            # No node prefix here: upstream's text.
            raise Forbidden(f"is not allowed to modify labels: {', '.join(bad)}")


def _comparable_pvc(pvc: Mapping[str, Any], options: AdmissionOptions) -> dict[str, Any]:
    """The PVC without the fields a node may change (and those upstream ignores)."""
    out = dict(pvc)
    out["metadata"] = {k: v for k, v in meta(pvc).items() if k not in ("resourceVersion", "managedFields")}
    dropped = {"capacity", "conditions"}
    if options.recover_volume_expansion_failure:
        dropped |= {"allocatedResourceStatuses", "allocatedResources"}
    status = get_map(pvc, "status", "") or {}
    out["status"] = {k: v for k, v in status.items() if k not in dropped}
    return out


def admit_pvc(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if r.sub_resource != "status":
        raise Forbidden("may only update PVC status")
    if r.operation != "UPDATE":
        raise Forbidden(f"unexpected operation {go_quote(r.operation)}")
    old = _comparable_pvc(typed(r, r.old_object, "PersistentVolumeClaim"), options)
    new = _comparable_pvc(typed(r, r.object, "PersistentVolumeClaim"), options)
    if not semantic_equal(old, new):
        raise Forbidden(
            f"node {go_quote(node)} is not allowed to update fields other than status.quantity and "
            f"status.conditions: {structural_diff(old, new)}"
        )


def admit_service_account(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    """serviceaccounts/token CREATE: bound to a pod (by uid) running on this node; 0 or 1 audiences."""
    if r.operation != "CREATE" or r.sub_resource != "token":
        return
    token_spec = spec(typed(r, r.object, "TokenRequest"))
    ref = get_map(token_spec, "boundObjectRef", "spec")
    if ref is None or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        raise Forbidden("node requested token not bound to a pod")
    ref_uid = get_str(ref, "uid", "spec.boundObjectRef")
    if not ref_uid:
        raise Forbidden("node requested token with a pod binding without a uid")
    pod_name = get_str(ref, "name", "spec.boundObjectRef")
    record = lookups.pod(r.namespace, pod_name)
    if record is None:
        raise NotFound("pod", pod_name)
    if ref_uid != record.uid:
        raise Forbidden(
            f"the UID in the bound object reference ({ref_uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated"
        )
    if record.node_name != node:
        raise Forbidden("node requested token bound to a pod scheduled on a different node")
    if options.service_account_node_audience_restriction:
        _check_audiences(token_spec, node, options)


def _check_audiences(token_spec: Mapping[str, Any], node: str, options: AdmissionOptions) -> None:
    audiences = token_spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise FieldError("spec.audiences: expected list of strings")
    if len(audiences) > 1:
        raise Forbidden("node may only request 0 or 1 audiences")
    # No audience, or "", is the API server's own: what every pod's default token volume uses.
    if audiences and audiences[0] and options.single_audience is AudiencePolicy.DEFAULT_ONLY:
        raise Forbidden(
            f"audience {go_quote(audiences[0])} not found in pod spec volume, system:node:{node} is not "
            "authorized to request tokens for this audience (nodeauthz cannot read pod volumes; "
            "it allows only the API server's default audience)"
        )


def admit_lease(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if r.namespace != NODE_LEASE_NAMESPACE:
        raise Forbidden(f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace")
    if r.operation == "CREATE":
        name = get_str(meta(typed(r, r.object, "Lease")), "name", "metadata")
    else:
        name = r.name
    if name != node:
        raise Forbidden("can only access node lease with the same name as the requesting node")


def admit_csinode(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    if r.operation == "CREATE":
        if r.object is None:
            raise Forbidden("unable to access the object name")
        name = get_str(meta(r.object), "name", "metadata")
    else:
        name = r.name
    if name != node:
        raise Forbidden("can only access CSINode with the same name as the requesting node")


def admit_resource_slice(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    # Update is the authorizer's (graph) job. A deletecollection reaches
    # admission as one DELETE per slice, each with its oldObject.
    if r.operation == "CREATE":
        if get_str(spec(typed(r, r.object, "ResourceSlice")), "nodeName", "spec") != node:
            raise Forbidden("can only create ResourceSlice with the same NodeName as the requesting node")
    elif r.operation == "DELETE":
        if get_str(spec(typed(r, r.old_object, "ResourceSlice")), "nodeName", "spec") != node:
            raise Forbidden("can only delete ResourceSlice with the same NodeName as the requesting node")


def admit_csr(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if options.allow_insecure_kubelet_csrs or r.operation != "CREATE":
        return
    if reason := csr_refusal(typed(r, r.object, "CertificateSigningRequest"), node):
        raise Forbidden(reason)
