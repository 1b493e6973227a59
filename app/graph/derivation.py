"""Object -> edges: what graph rows a Kubernetes object implies. Pure, no I/O.

Mirrors upstream's ``graph_populator.go``/``graph.go`` (see spec section 4).
Every edge points toward a node. An edge that ends at a pod or a node carries
that node's name as ``node`` (upstream's "destination edge"), so a check only
follows edges leading to the node asked about; plain edges (secret -> pv,
pv -> pvc) carry ``node=None``.

The input is the object's raw JSON as a ``Mapping`` (what the API server sends);
model classes are deliberately not used (they cost milliseconds per pod).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app.k8s import pod_references
from app.k8s.json_fields import FieldError, get_map, get_str
from app.k8s.kinds import (
    CLUSTER_SCOPED,
    CSIDRIVER,
    MAX_NAME_LENGTH,
    NODE,
    POD,
    PODCERTIFICATEREQUEST,
    PV,
    PVC,
    RESOURCESLICE,
    SECRET,
    SERVICEACCOUNT,
    VOLUMEATTACHMENT,
    VertexKey,
)
from app.k8s.pv_secrets import pv_secret_refs

__all__ = ["DerivedObject", "Edge", "InvalidObject", "derive", "owner_kind", "pod_is_mirror"]

# Kubernetes ``kind`` -> owner kind. Matched on kind alone: every served
# version of these objects (e.g. ResourceSlice v1alpha3..v1) reads the same way.
_OWNER_KIND_BY_KIND: dict[str, str] = {
    "Pod": POD,
    "PersistentVolume": PV,
    "VolumeAttachment": VOLUMEATTACHMENT,
    "ResourceSlice": RESOURCESLICE,
    "PodCertificateRequest": PODCERTIFICATEREQUEST,
    "Node": NODE,
    "ServiceAccount": SERVICEACCOUNT,
    "PersistentVolumeClaim": PVC,
    "CSIDriver": CSIDRIVER,
}


class InvalidObject(ValueError):
    """The object cannot be understood (missing metadata.name, wrong types, ...)."""


@dataclass(frozen=True, order=True)
class Edge:
    """A directed edge ``source -> target``; ``node`` is the destination node name or None."""

    source: VertexKey
    target: VertexKey
    node: str | None


@dataclass(frozen=True)
class DerivedObject:
    """A watched object reduced to what the graph needs.

    ``kind`` is an owner kind from ``app.k8s.kinds.OWNER_KINDS``. ``edges`` is sorted
    and free of duplicates, so equal inputs give equal ``fingerprint``s.
    ``node_name`` is the node the object is bound to ("" when none, e.g. an
    unbound pod, which keeps its row for lookups but owns no edges).
    """

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    node_name: str
    edges: tuple[Edge, ...]

    # Cached: the store asks for both several times per object on the bulk path.
    @cached_property
    def key(self) -> VertexKey:
        return VertexKey(self.kind, self.namespace, self.name)

    @cached_property
    def fingerprint(self) -> str:
        """A short digest of the edge set (and uid, node) to skip no-op rewrites."""
        parts = [self.uid, self.node_name]
        for e in self.edges:
            parts.extend((*e.source, *e.target, e.node or ""))
        return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()


def owner_kind(obj: Mapping[str, Any]) -> str | None:
    """The owner kind for a raw object by its ``kind`` field, or None for kinds the graph ignores."""
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    return _OWNER_KIND_BY_KIND.get(kind) if isinstance(kind, str) else None


def pod_is_mirror(pod: Mapping[str, Any]) -> bool:
    """True if the pod has the ``kubernetes.io/config.mirror`` annotation (any value).

    Raises InvalidObject if ``metadata`` or ``metadata.annotations`` is not an object.
    """
    try:
        return pod_references.is_mirror(pod)
    except FieldError as e:
        raise InvalidObject(str(e)) from None


def derive(obj: Mapping[str, Any], kind: str | None = None) -> DerivedObject:
    """Derive the graph rows for one object. ``kind`` defaults to ``owner_kind(obj)``.

    Raises InvalidObject for malformed input and for kinds the graph does not use.
    ``kind`` lets callers pass list items, which carry no ``kind`` field; if the
    object does name an owner kind, the two must agree.
    """
    if not isinstance(obj, Mapping):
        raise InvalidObject("object: expected a JSON object")
    own = owner_kind(obj)
    if kind is None:
        if own is None:
            raise InvalidObject(f"kind: {obj.get('kind')!r} is not a kind the graph uses")
        kind = own
    elif kind not in _DERIVERS:
        raise InvalidObject(f"kind: {kind!r} is not a kind the graph uses")
    elif own is not None and own != kind:
        raise InvalidObject(f"kind: object is a {obj['kind']}, expected {kind}")
    try:
        namespace, name, uid, resource_version = _metadata(obj, kind)
        node_name, edges = _DERIVERS[kind](obj, namespace, name)
    except FieldError as e:
        raise InvalidObject(str(e)) from None
    return DerivedObject(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=uid,
        resource_version=resource_version,
        node_name=node_name,
        edges=tuple(sorted(set(edges))),
    )


def _metadata(obj: Mapping[str, Any], kind: str) -> tuple[str, str, str, str]:
    """``(namespace, name, uid, resourceVersion)``, validated."""
    meta = get_map(obj, "metadata", "")
    if meta is None:
        raise InvalidObject("metadata: required")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidObject("metadata.name: expected a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidObject(f"metadata.name: longer than {MAX_NAME_LENGTH} characters")
    namespace = ""
    if kind not in CLUSTER_SCOPED:
        namespace = get_str(meta, "namespace", "metadata")
        if not namespace:
            raise InvalidObject(f"metadata.namespace: required for {kind}")
    uid = get_str(meta, "uid", "metadata")
    resource_version = get_str(meta, "resourceVersion", "metadata")
    return namespace, name, uid, resource_version


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(obj, "spec", "") or {}


# Each deriver returns (node_name, edges) for an object with validated metadata.
_Deriver = Callable[[Mapping[str, Any], str, str], tuple[str, Iterable[Edge]]]


def _derive_pod(obj: Mapping[str, Any], namespace: str, name: str) -> tuple[str, list[Edge]]:
    spec = _spec(obj)
    node = get_str(spec, "nodeName", "spec")
    if not node:
        return "", []  # unbound: upstream ignores it until scheduled
    pod = VertexKey(POD, namespace, name)
    edges = [Edge(pod, VertexKey(NODE, "", node), node)]
    # A mirror pod is created by the node itself, so it must grant nothing
    # beyond itself (upstream's "defense in depth").
    if pod_references.is_mirror(obj):
        return node, edges
    status = get_map(obj, "status", "") or {}
    for ref_kind, ref_name in pod_references.pod_references(name, spec, status):
        edges.append(Edge(VertexKey(ref_kind, namespace, ref_name), pod, node))
    return node, edges


def _derive_pv(obj: Mapping[str, Any], namespace: str, name: str) -> tuple[str, list[Edge]]:
    spec = _spec(obj)
    claim = get_map(spec, "claimRef", "spec")
    if claim is None:
        # Upstream adds no edges (not even secret -> pv) for an unclaimed PV:
        # without pv -> pvc they could lead to no node anyway.
        return "", []
    claim_ns = get_str(claim, "namespace", "spec.claimRef")
    claim_name = get_str(claim, "name", "spec.claimRef")
    pv = VertexKey(PV, "", name)
    edges = []
    if claim_name:
        edges.append(Edge(pv, VertexKey(PVC, claim_ns, claim_name), None))
    for secret_ns, secret_name in pv_secret_refs(spec, claim_ns):
        if secret_name:
            edges.append(Edge(VertexKey(SECRET, secret_ns, secret_name), pv, None))
    return "", edges


def _node_bound(kind: str) -> _Deriver:
    """Deriver for objects that point straight at ``spec.nodeName`` (VA, ResourceSlice, PCR)."""

    def derive_node_bound(obj: Mapping[str, Any], namespace: str, name: str) -> tuple[str, list[Edge]]:
        # ResourceSlice v1 leaves nodeName unset for allNodes/nodeSelector slices.
        node = get_str(_spec(obj), "nodeName", "spec")
        if not node:
            return "", []
        return node, [Edge(VertexKey(kind, namespace, name), VertexKey(NODE, "", node), node)]

    return derive_node_bound


def _derive_node(obj: Mapping[str, Any], namespace: str, name: str) -> tuple[str, list[Edge]]:
    return name, []  # kept for its uid (admission); node vertices exist only as edge targets


def _derive_lookup_only(obj: Mapping[str, Any], namespace: str, name: str) -> tuple[str, list[Edge]]:
    # Service accounts, PVCs, CSIDrivers: kept (name, uid) for NodeRestriction; what else it reads
    # of them is in app.k8s.admission_facts. Their graph edges come from pods and PVs, as upstream.
    return "", []


_DERIVERS: dict[str, _Deriver] = {
    POD: _derive_pod,
    PV: _derive_pv,
    VOLUMEATTACHMENT: _node_bound(VOLUMEATTACHMENT),
    RESOURCESLICE: _node_bound(RESOURCESLICE),
    PODCERTIFICATEREQUEST: _node_bound(PODCERTIFICATEREQUEST),
    NODE: _derive_node,
    SERVICEACCOUNT: _derive_lookup_only,
    PVC: _derive_lookup_only,
    CSIDRIVER: _derive_lookup_only,
}
