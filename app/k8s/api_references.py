"""Does a pod spec reference another API object? Upstream ``podutil.HasAPIObjectReference``. Pure, no I/O.

Follows ``pkg/api/pod/util.go`` ``HasAPIObjectReference`` check for check and
in its order: the service account name, any secret (``VisitPodSecretNames``),
any config map (``VisitPodConfigmapNames``), any resource claim, then each
volume in turn through one switch, where the first matching volume source
decides. The answer is the plural resource upstream names in
``node "<n>" can not create pods that reference <resource>``.

A volume (or projected source) of a type this table does not know is an error,
as upstream's ``default`` case is: a source added to Kubernetes later must be
judged before a node may use it in a mirror pod. A JSON ``null`` volume or
source is Go's zero value, which has no known type either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.k8s.goquote import go_quote
from app.k8s.json_fields import FieldError, get_map, get_str, iter_objects, json_type
from app.k8s.pod_references import configmap_names, secret_names

# Volume sources that need nothing from the API (upstream's first, ``continue`` case).
_LOCAL_VOLUME_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "cephfs",
    "cinder",
    "downwardAPI",
    "emptyDir",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)

# The switch's later cases, in order: volume source -> the resource it references.
_REFERENCING_VOLUME_SOURCES = (
    ("configMap", "configmaps (via configmap volumes)"),
    ("secret", "secrets (via secret volumes)"),
    ("csi", "csidrivers (via CSI volumes)"),
    ("glusterfs", "endpoints (via glusterFS volumes)"),
    ("persistentVolumeClaim", "persistentvolumeclaims"),
    ("ephemeral", "persistentvolumeclaims (via ephemeral volumes)"),
    ("azureFile", "secrets (via azureFile volumes)"),
)

# Projected volume sources, in upstream's inner switch order; None: needs nothing from the API.
_PROJECTED_SOURCES = (
    ("configMap", "configmaps (via projected volumes)"),
    ("secret", "secrets (via projected volumes)"),
    ("serviceAccountToken", "serviceaccounts (via projected volumes)"),
    ("clusterTrustBundle", "clustertrustbundles"),
    ("podCertificate", "podcertificates"),
    ("downwardAPI", None),
)


class UnknownVolumeSource(ValueError):
    """A volume or projected source of no known type; ``str()`` is upstream's error text."""


def _has(obj: Mapping[str, Any], key: str, path: str) -> bool:
    return get_map(obj, key, path) is not None


def _projected_reference(projected: Mapping[str, Any], path: str, volume_name: str) -> str | None:
    for source_path, source in iter_objects(projected, "sources", path, nulls_as_empty=True):
        for key, resource in _PROJECTED_SOURCES:
            if _has(source, key, source_path):
                if resource is not None:
                    return resource
                break
        else:
            raise UnknownVolumeSource(f"unknown source for projected volume {go_quote(volume_name)}")
    return None


def _volume_reference(volume: Mapping[str, Any], path: str) -> str | None:
    if any(_has(volume, key, path) for key in _LOCAL_VOLUME_SOURCES):
        return None
    for key, resource in _REFERENCING_VOLUME_SOURCES:
        if _has(volume, key, path):
            return resource
    projected = get_map(volume, "projected", path)
    name = get_str(volume, "name", path)
    if projected is None:
        # Two spaces, as upstream's format string has them.
        raise UnknownVolumeSource(f"unknown volume type for volume  {go_quote(name)}")
    return _projected_reference(projected, f"{path}.projected", name)


def api_object_reference(spec: Mapping[str, Any]) -> str | None:
    """The first API resource the pod spec references, or None when it references none.

    Raises ``UnknownVolumeSource`` for a volume or projected source of unknown
    type, and ``FieldError`` for a walked field of the wrong JSON type.
    """
    if get_str(spec, "serviceAccountName", "spec"):
        return "serviceaccounts"
    # Upstream stops at the first visited name, empty or not: presence is what counts.
    if next(secret_names(spec), None) is not None:
        return "secrets"
    if next(configmap_names(spec), None) is not None:
        return "configmaps"
    claims = spec.get("resourceClaims")
    if claims is not None and not isinstance(claims, list):
        raise FieldError("spec.resourceClaims", "list", json_type(claims))
    if claims:
        return "resourceclaims"
    for path, volume in iter_objects(spec, "volumes", "spec", nulls_as_empty=True):
        resource = _volume_reference(volume, path)
        if resource is not None:
            return resource
    return None
