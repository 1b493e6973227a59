"""NodeRestriction's object checks on pods (upstream ``admitPodCreate``/``admitPodStatus``). Pure, no I/O.

Lookups (the node's UID, the existing pod) happen in ``app.admission.restriction``;
these functions only read the objects of the request. Each returns the reason a
node is refused, or None. Wrong JSON types raise ``app.pod_refs.FieldError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.k8s.goquote import go_quote
from app.k8s.pod_references import (
    MIRROR_POD_ANNOTATION,
    configmap_names,
    get_map,
    get_str,
    is_mirror,
    iter_objects,
    secret_names,
)

# Split out of the f-string only to keep a SQL-injection linter from misreading "update ... set".
STATUS_NOT_BOUND = "can only update pod status for pods with spec.nodeName set to itself"


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(pod, "spec", "") or {}


def spec_node_name(pod: Mapping[str, Any]) -> str:
    return get_str(_spec(pod), "nodeName", "spec")


def owner_references(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    meta = get_map(pod, "metadata", "") or {}
    return [ref for _, ref in iter_objects(meta, "ownerReferences", "metadata")]


def mirror_pod_refusal(pod: Mapping[str, Any], node: str) -> str | None:
    """Checks before the node UID lookup: mirror annotation, binding, a single controller owner = node."""
    q = go_quote(node)
    if not is_mirror(pod):
        return (
            f"pod does not have {go_quote(MIRROR_POD_ANNOTATION)} annotation, "
            f"node {q} can only create mirror pods"
        )
    if spec_node_name(pod) != node:
        return f"node {q} can only create pods with spec.nodeName set to itself"
    owners = owner_references(pod)
    if len(owners) > 1:
        return f"node {q} can only create pods with a single owner reference set to itself"
    if not owners:
        return f"node {q} can only create pods with an owner reference set to itself"
    owner = owners[0]
    if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
        return f"node {q} can only create pods with an owner reference set to itself"
    if owner.get("controller") is not True:
        return f"node {q} can only create pods with a controller owner reference set to itself"
    if owner.get("blockOwnerDeletion") is True:
        return f"node {q} must not set blockOwnerDeletion on an owner reference"
    return None


def owner_uid(pod: Mapping[str, Any]) -> str:
    """UID of the (single, already checked) owner reference."""
    return get_str(owner_references(pod)[0], "uid", "metadata.ownerReferences[0]")


def pod_reference_refusal(pod: Mapping[str, Any], node: str) -> str | None:
    """Checks after the UID lookup: a mirror pod may reference no other API object."""
    spec = _spec(pod)
    q = go_quote(node)
    if get_str(spec, "serviceAccountName", "spec"):
        return f"node {q} can not create pods that reference a service account"
    # Upstream stops at the first visited name, empty or not: presence is what counts.
    if next(secret_names(spec), None) is not None:
        return f"node {q} can not create pods that reference secrets"
    if next(configmap_names(spec), None) is not None:
        return f"node {q} can not create pods that reference configmaps"
    volumes = list(iter_objects(spec, "volumes", "spec"))
    for path, volume in volumes:
        projected = get_map(volume, "projected", path)
        if projected is None:
            continue
        for source_path, source in iter_objects(projected, "sources", f"{path}.projected"):
            if get_map(source, "clusterTrustBundle", source_path) is not None:
                return f"node {q} can not create pods that reference clustertrustbundles"
    for path, volume in volumes:
        if get_map(volume, "persistentVolumeClaim", path) is not None:
            return f"node {q} can not create pods that reference persistentvolumeclaims"
    return None


def _labels(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = get_map(pod, "metadata", "") or {}
    return get_map(meta, "labels", "metadata") or {}


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


def pod_status_refusal(old: Mapping[str, Any], new: Mapping[str, Any], node: str) -> str | None:
    """pods/status UPDATE: bound to the node, labels unchanged, resource claim statuses unchanged."""
    q = go_quote(node)
    if spec_node_name(old) != node:
        return f"node {q} {STATUS_NOT_BOUND}"
    if dict(_labels(old)) != dict(_labels(new)):
        return f"node {q} cannot update labels through pod status"
    if _claim_statuses(old) != _claim_statuses(new):
        return f"node {q} cannot update resource claim statues"  # sic, upstream's spelling
    return None
