"""Secrets a PersistentVolume lets its node read, from the raw JSON. Pure, no I/O.

Follows upstream's ``VisitPVSecretNames`` (``pkg/api/v1/persistentvolume/util.go``),
keeping only the references it marks kubelet-visible.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from app.k8s.json_fields import get_map, get_str, join

# ``secretRef`` sources in upstream's switch order (azureFile comes before them,
# csi after). True: a ref without a namespace falls back to the claimRef
# namespace ("previously persisted PV objects"); False: it keeps its own, even "".
_SECRET_REF_SOURCES: tuple[tuple[str, bool], ...] = (
    ("cephfs", True),
    ("cinder", False),
    ("flexVolume", True),
    ("rbd", True),
    ("scaleIO", True),
    ("iscsi", True),
    ("storageos", False),
)

# CSI refs the kubelet uses. controllerPublishSecretRef and
# controllerExpandSecretRef are for controllers only and grant nothing.
_CSI_NODE_REFS = ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef")


def _ref(source: Mapping[str, Any], key: str, path: str, fallback_ns: str) -> Iterator[tuple[str, str]]:
    ref = get_map(source, key, path)
    if ref is not None:
        ref_path = join(path, key)
        yield get_str(ref, "namespace", ref_path) or fallback_ns, get_str(ref, "name", ref_path)


def pv_secret_refs(spec: Mapping[str, Any], claim_namespace: str) -> Iterator[tuple[str, str]]:
    """``(namespace, name)`` of each kubelet-visible secret of the PV spec (names may be "").

    Like upstream, only the first volume source present is looked at.
    """
    azure = get_map(spec, "azureFile", "spec")
    if azure is not None:
        namespace = get_str(azure, "secretNamespace", "spec.azureFile") or claim_namespace
        yield namespace, get_str(azure, "secretName", "spec.azureFile")
        return
    for key, falls_back in _SECRET_REF_SOURCES:
        source = get_map(spec, key, "spec")
        if source is not None:
            yield from _ref(source, "secretRef", join("spec", key), claim_namespace if falls_back else "")
            return
    csi = get_map(spec, "csi", "spec")
    if csi is not None:
        for key in _CSI_NODE_REFS:
            yield from _ref(csi, key, "spec.csi", "")
