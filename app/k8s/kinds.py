"""Vertex kinds, object keys and the names users type for them.

Vertex kinds are upstream's vertex types (graph.go ``vertexTypes``) spelled as
readable words, because the schema is meant to be read with plain SQL.
"""

from __future__ import annotations

from typing import NamedTuple

# Vertex kinds (the ``kind`` column of ``vertices``).
CONFIGMAP = "configmap"
RESOURCESLICE = "resourceslice"
NODE = "node"
POD = "pod"
PVC = "pvc"
PV = "pv"
RESOURCECLAIM = "resourceclaim"
SECRET = "secret"
VOLUMEATTACHMENT = "volumeattachment"
SERVICEACCOUNT = "serviceaccount"
PODCERTIFICATEREQUEST = "podcertificaterequest"
# Watched for NodeRestriction only (app.k8s.admission_facts); never a vertex.
CSIDRIVER = "csidriver"

VERTEX_KINDS: tuple[str, ...] = (
    CONFIGMAP,
    RESOURCESLICE,
    NODE,
    POD,
    PVC,
    PV,
    RESOURCECLAIM,
    SECRET,
    VOLUMEATTACHMENT,
    SERVICEACCOUNT,
    PODCERTIFICATEREQUEST,
)

# Upstream's spelling of each vertex type, used in its (logged) error texts.
UPSTREAM_TYPE_NAMES: dict[str, str] = {
    CONFIGMAP: "configmap",
    RESOURCESLICE: "resourceslice",
    NODE: "node",
    POD: "pod",
    PVC: "pvc",
    PV: "pv",
    RESOURCECLAIM: "resourceclaim",
    SECRET: "secret",
    VOLUMEATTACHMENT: "volumeattachment",
    SERVICEACCOUNT: "serviceAccount",
    PODCERTIFICATEREQUEST: "podcertificaterequest",
}

# Object kinds the sync workers watch (the ``kind`` column of ``objects``).
# Each owns the edges derived from it; nodes, service accounts, PVCs and
# CSIDrivers own none (kept for NodeRestriction's lookups: uid, and the facts
# of ``app.k8s.admission_facts``).
OWNER_KINDS: tuple[str, ...] = (
    POD,
    PV,
    VOLUMEATTACHMENT,
    RESOURCESLICE,
    PODCERTIFICATEREQUEST,
    NODE,
    SERVICEACCOUNT,
    PVC,
    CSIDRIVER,
)

# Kinds whose vertices live outside namespaces.
CLUSTER_SCOPED: frozenset[str] = frozenset({NODE, PV, VOLUMEATTACHMENT, RESOURCESLICE, CSIDRIVER})

# What users may type on the command line -> vertex kind.
KIND_ALIASES: dict[str, str] = {
    "secret": SECRET,
    "secrets": SECRET,
    "configmap": CONFIGMAP,
    "configmaps": CONFIGMAP,
    "cm": CONFIGMAP,
    "persistentvolumeclaim": PVC,
    "persistentvolumeclaims": PVC,
    "pvc": PVC,
    "persistentvolume": PV,
    "persistentvolumes": PV,
    "pv": PV,
    "pod": POD,
    "pods": POD,
    "po": POD,
    "resourceclaim": RESOURCECLAIM,
    "resourceclaims": RESOURCECLAIM,
    "serviceaccount": SERVICEACCOUNT,
    "serviceaccounts": SERVICEACCOUNT,
    "sa": SERVICEACCOUNT,
    "volumeattachment": VOLUMEATTACHMENT,
    "volumeattachments": VOLUMEATTACHMENT,
    "va": VOLUMEATTACHMENT,
    "resourceslice": RESOURCESLICE,
    "resourceslices": RESOURCESLICE,
    "podcertificaterequest": PODCERTIFICATEREQUEST,
    "podcertificaterequests": PODCERTIFICATEREQUEST,
    "pcr": PODCERTIFICATEREQUEST,
    "node": NODE,
    "nodes": NODE,
    "no": NODE,
}

# Kubernetes object names are DNS subdomains: at most 253 characters.
MAX_NAME_LENGTH = 253


class VertexKey(NamedTuple):
    """A vertex of the graph: (kind, namespace, name); namespace is "" when cluster-scoped."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


def resolve_kind(text: str) -> str:
    """Map a user-typed kind (``pvc``, ``secrets``, ``PersistentVolume``) to a vertex kind."""
    kind = KIND_ALIASES.get(text.strip().lower())
    if kind is None:
        known = ", ".join(sorted({k for k in KIND_ALIASES if k == KIND_ALIASES[k] or len(k) <= 3}))
        raise ValueError(f"unknown kind {text!r}; expected one of: {known}")
    return kind
