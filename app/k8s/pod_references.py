"""What a pod references, read from its raw JSON. Pure, no I/O.

Follows upstream's ``VisitPodSecretNames``/``VisitPodConfigmapNames``
(``pkg/api/v1/pod/util.go``) and the PVC / resource-claim loops of ``AddPod``
(``graph.go``).

Fields are read with ``app.k8s.json_fields``: a walked field of the wrong JSON
type raises ``FieldError`` naming its path. Only fields the code walks are checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from app.k8s.json_fields import get_map, get_str, iter_objects, join
from app.k8s.kinds import CONFIGMAP, PVC, RESOURCECLAIM, SECRET, SERVICEACCOUNT

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

# Volume sources in upstream's switch order: only the first one present in a
# volume is visited. The second item names the secret field: "secretName" is a
# plain string, anything else an object whose ``name`` is the secret.
_SECRET_VOLUME_SOURCES: tuple[tuple[str, str], ...] = (
    ("azureFile", "secretName"),
    ("cephfs", "secretRef"),
    ("cinder", "secretRef"),
    ("flexVolume", "secretRef"),
    ("projected", ""),
    ("rbd", "secretRef"),
    ("secret", "secretName"),
    ("scaleIO", "secretRef"),
    ("iscsi", "secretRef"),
    ("storageos", "secretRef"),
    ("csi", "nodePublishSecretRef"),
)

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _ref_name(obj: Mapping[str, Any], key: str, path: str) -> Iterator[str]:
    """The ``name`` of the reference object ``obj[key]``, if present."""
    ref = get_map(obj, key, path)
    if ref is not None:
        yield get_str(ref, "name", join(path, key))


def is_mirror(pod: Mapping[str, Any]) -> bool:
    """True if the pod carries the mirror-pod annotation (any value, even "")."""
    meta = get_map(pod, "metadata", "")
    if meta is None:
        return False
    annotations = get_map(meta, "annotations", "metadata")
    return annotations is not None and MIRROR_POD_ANNOTATION in annotations


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in _CONTAINER_LISTS:
        yield from iter_objects(spec, key, "spec")


def _container_names(c: Mapping[str, Any], path: str, env_from_key: str, key_ref: str) -> Iterator[str]:
    for p, env_from in iter_objects(c, "envFrom", path):
        yield from _ref_name(env_from, env_from_key, p)
    for p, env in iter_objects(c, "env", path):
        value_from = get_map(env, "valueFrom", p)
        if value_from is not None:
            yield from _ref_name(value_from, key_ref, join(p, "valueFrom"))


def _projected_names(projected: Mapping[str, Any], path: str, key: str) -> Iterator[str]:
    for p, source in iter_objects(projected, "sources", path):
        yield from _ref_name(source, key, p)


def _volume_secret_names(volume: Mapping[str, Any], path: str) -> Iterator[str]:
    for source_key, name_key in _SECRET_VOLUME_SOURCES:
        source = get_map(volume, source_key, path)
        if source is None:
            continue
        source_path = join(path, source_key)
        if source_key == "projected":
            yield from _projected_names(source, source_path, "secret")
        elif name_key == "secretName":
            yield get_str(source, name_key, source_path)
        else:
            yield from _ref_name(source, name_key, source_path)
        return  # upstream's switch: the first source present wins


def _volume_configmap_names(volume: Mapping[str, Any], path: str) -> Iterator[str]:
    projected = get_map(volume, "projected", path)
    if projected is not None:
        yield from _projected_names(projected, join(path, "projected"), "configMap")
        return
    config_map = get_map(volume, "configMap", path)
    if config_map is not None:
        yield get_str(config_map, "name", join(path, "configMap"))


def secret_names(spec: Mapping[str, Any]) -> Iterator[str]:
    """Secret names the pod spec references (may repeat, may be "")."""
    for p, ref in iter_objects(spec, "imagePullSecrets", "spec"):
        yield get_str(ref, "name", p)
    for p, container in _containers(spec):
        yield from _container_names(container, p, "secretRef", "secretKeyRef")
    for p, volume in iter_objects(spec, "volumes", "spec"):
        yield from _volume_secret_names(volume, p)


def configmap_names(spec: Mapping[str, Any]) -> Iterator[str]:
    """ConfigMap names the pod spec references (may repeat, may be "")."""
    for p, container in _containers(spec):
        yield from _container_names(container, p, "configMapRef", "configMapKeyRef")
    for p, volume in iter_objects(spec, "volumes", "spec"):
        yield from _volume_configmap_names(volume, p)


def pvc_names(pod_name: str, spec: Mapping[str, Any]) -> Iterator[str]:
    """Claim names of persistentVolumeClaim volumes, else of ephemeral volumes (``<pod>-<volume>``)."""
    for p, volume in iter_objects(spec, "volumes", "spec"):
        claim = get_map(volume, "persistentVolumeClaim", p)
        if claim is not None:
            yield get_str(claim, "claimName", join(p, "persistentVolumeClaim"))
        elif get_map(volume, "ephemeral", p) is not None:
            yield f"{pod_name}-{get_str(volume, 'name', p)}"


def resource_claim_names(spec: Mapping[str, Any], status: Mapping[str, Any]) -> Iterator[str]:
    """Resource claims the pod uses (upstream ``resourceclaim.Name`` plus the extended-resource claim).

    A template claim counts only once the first ``status.resourceClaimStatuses``
    entry of the same name names its generated claim.
    """
    statuses: list[tuple[str, str]] | None = None
    for p, claim in iter_objects(spec, "resourceClaims", "spec"):
        if claim.get("resourceClaimName") is not None:
            yield get_str(claim, "resourceClaimName", p)
        elif claim.get("resourceClaimTemplateName") is not None:
            if statuses is None:
                statuses = [
                    (get_str(s, "name", sp), get_str(s, "resourceClaimName", sp))
                    for sp, s in iter_objects(status, "resourceClaimStatuses", "status")
                ]
            wanted = get_str(claim, "name", p)
            yield next((generated for name, generated in statuses if name == wanted), "")
    extended = get_map(status, "extendedResourceClaimStatus", "status")
    if extended is not None:
        yield get_str(extended, "resourceClaimName", "status.extendedResourceClaimStatus")


def pod_references(pod_name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(vertex kind, name)`` of every object a bound, non-mirror pod references.

    All live in the pod's namespace; empty names are dropped.
    """
    refs: set[tuple[str, str]] = {(SERVICEACCOUNT, get_str(spec, "serviceAccountName", "spec"))}
    refs.update((SECRET, n) for n in secret_names(spec))
    refs.update((CONFIGMAP, n) for n in configmap_names(spec))
    refs.update((PVC, n) for n in pvc_names(pod_name, spec))
    refs.update((RESOURCECLAIM, n) for n in resource_claim_names(spec, status))
    return {(kind, name) for kind, name in refs if name}
