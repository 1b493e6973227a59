"""NodeRestriction on pods: mirror pods, pods/status, pods/eviction (upstream ``admitPod*``). Pure, no I/O.

Only the lookups passed in (the node's UID, the existing pod) reach outside the
request. Every refusal raises ``Forbidden`` or ``NotFound``; a walked field of
the wrong JSON type raises ``FieldError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.lookups import AdmissionLookups
from app.admission.objects import labels, meta, spec, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden, NotFound
from app.k8s.api_references import UnknownVolumeSource, api_object_reference
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_map, get_str, iter_objects
from app.k8s.pod_references import MIRROR_POD_ANNOTATION, is_mirror

# Split out of the f-string only to keep a SQL-injection linter from misreading "update ... set".
STATUS_NOT_BOUND = "can only update pod status for pods with spec.nodeName set to itself"


def admit_pod(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if r.sub_resource == "":
        if r.operation == "CREATE":
            _admit_create(r, node, lookups)
        elif r.operation == "DELETE":
            _admit_delete(r, node, lookups)
        else:
            raise Forbidden(
                f"unexpected operation {go_quote(r.operation)}, node {go_quote(node)} can only create "
                "and delete mirror pods"
            )
    elif r.sub_resource == "status":
        _admit_status(r, node)
    elif r.sub_resource == "eviction":
        _admit_eviction(r, node, lookups)
    else:
        raise Forbidden(
            f"unexpected pod subresource {go_quote(r.sub_resource)}, only 'status' and 'eviction' are allowed"
        )


def spec_node_name(pod: Mapping[str, Any]) -> str:
    return get_str(spec(pod), "nodeName", "spec")


def _owner_references(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [ref for _, ref in iter_objects(meta(pod), "ownerReferences", "metadata")]


def _admit_create(r: AdmissionRequest, node: str, lookups: AdmissionLookups) -> None:
    pod = typed(r, r.object, "Pod")
    _check_mirror_pod(pod, node)
    node_uid = lookups.node_uid(node)
    if node_uid is None:
        raise NotFound("node", node)
    owner_uid = get_str(_owner_references(pod)[0], "uid", "metadata.ownerReferences[0]")
    if owner_uid != node_uid:
        raise Forbidden(f"node {node} UID mismatch: expected {owner_uid} got {node_uid}")
    _check_pod_references(pod, node)


def _check_mirror_pod(pod: Mapping[str, Any], node: str) -> None:
    """Before the node UID lookup: mirror annotation, binding, a single controller owner = node."""
    q = go_quote(node)
    if not is_mirror(pod):
        raise Forbidden(
            f"pod does not have {go_quote(MIRROR_POD_ANNOTATION)} annotation, node {q} can only create mirror pods"
        )
    if spec_node_name(pod) != node:
        raise Forbidden(f"node {q} can only create pods with spec.nodeName set to itself")
    owners = _owner_references(pod)
    if len(owners) > 1:
        raise Forbidden(f"node {q} can only create pods with a single owner reference set to itself")
    if not owners:
        raise Forbidden(f"node {q} can only create pods with an owner reference set to itself")
    owner = owners[0]
    if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
        raise Forbidden(f"node {q} can only create pods with an owner reference set to itself")
    if owner.get("controller") is not True:
        raise Forbidden(f"node {q} can only create pods with a controller owner reference set to itself")
    if owner.get("blockOwnerDeletion") is True:
        raise Forbidden(f"node {q} must not set blockOwnerDeletion on an owner reference")


def _check_pod_references(pod: Mapping[str, Any], node: str) -> None:
    """After the UID lookup: a mirror pod may reference no other API object (``HasAPIObjectReference``)."""
    try:
        resource = api_object_reference(spec(pod))
    except UnknownVolumeSource as err:
        raise Forbidden(f"error checking mirror pod for API references: {err}") from None
    if resource is not None:
        raise Forbidden(f"node {go_quote(node)} can not create pods that reference {resource}")


def _admit_delete(r: AdmissionRequest, node: str, lookups: AdmissionLookups) -> None:
    # The review's oldObject is the apiserver's current copy; look the pod up only without it.
    if r.old_object is not None:
        bound_to = spec_node_name(r.old_object)
    else:
        record = lookups.pod(r.namespace, r.name)
        if record is None:
            raise NotFound("pod", r.name)
        bound_to = record.node_name
    if bound_to != node:
        raise Forbidden(f"node {go_quote(node)} can only delete pods with spec.nodeName set to itself")


def _claim_statuses(pod: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    status = get_map(pod, "status", "") or {}
    out: list[tuple[str, str | None]] = []
    for path, entry in iter_objects(status, "resourceClaimStatuses", "status"):
        claim = entry.get("resourceClaimName")
        out.append(
            (
                get_str(entry, "name", path),
                None if claim is None else get_str(entry, "resourceClaimName", path),
            )
        )
    return out


def _extended_claim_status(pod: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, str]]] | None:
    """``status.extendedResourceClaimStatus`` as upstream compares it: absent differs from ``{}``."""
    path = "status.extendedResourceClaimStatus"
    extended = get_map(get_map(pod, "status", "") or {}, "extendedResourceClaimStatus", "status")
    if extended is None:
        return None
    mappings = [
        (get_str(m, "containerName", p), get_str(m, "resourceName", p), get_str(m, "requestName", p))
        for p, m in iter_objects(extended, "requestMappings", path, nulls_as_empty=True)
    ]
    return get_str(extended, "resourceClaimName", path), mappings


def _admit_status(r: AdmissionRequest, node: str) -> None:
    """pods/status UPDATE: bound to the node; labels, resource claim statuses and the extended one unchanged."""
    q = go_quote(node)
    if r.operation != "UPDATE":
        raise Forbidden(f"unexpected operation {go_quote(r.operation)}")
    old = typed(r, r.old_object, "Pod")
    if spec_node_name(old) != node:  # checked before the new object's type, as upstream
        raise Forbidden(f"node {q} {STATUS_NOT_BOUND}")
    new = typed(r, r.object, "Pod")
    if dict(labels(old)) != dict(labels(new)):
        raise Forbidden(f"node {q} cannot update labels through pod status")
    if _claim_statuses(old) != _claim_statuses(new):
        raise Forbidden(f"node {q} cannot update resource claim statues")  # sic, upstream's spelling
    if _extended_claim_status(old) != _extended_claim_status(new):
        raise Forbidden(f"node {q} cannot update extended resource claim status")


def _admit_eviction(r: AdmissionRequest, node: str, lookups: AdmissionLookups) -> None:
    if r.operation != "CREATE":
        raise Forbidden(f"unexpected operation {r.operation}")
    eviction = typed(r, r.object, "Eviction")
    # The URL's pod name wins over the Eviction object's.
    pod_name = r.name or get_str(meta(eviction), "name", "metadata")
    if not pod_name:
        raise Forbidden("could not determine pod from request data")
    record = lookups.pod(r.namespace, pod_name)
    if record is None:
        raise NotFound("pod", pod_name)
    if record.node_name != node:
        raise Forbidden(f"node {node} can only evict pods with spec.nodeName set to itself")
