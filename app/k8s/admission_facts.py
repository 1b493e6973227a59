"""What NodeRestriction needs to know about stored objects, read from their raw JSON. Pure, no I/O.

The graph keeps only edges; the service-account token audience check and the
PodCertificateRequest checks (upstream ``validateNodeServiceAccountAudience``,
``podReferencesAudience``, ``getCSIFromPVC``, ``csiDriverHasAudience`` and
``admitPodCertificateRequest``) also read a few fields of pods, PVCs, PVs and
CSIDrivers. Each watched object of those kinds is reduced here to a small JSON
document (its "facts"); the store keeps the document beside the object
(``app.graph.admission_facts``) and the admission rules read it back with the
``*_from_json`` readers. ServiceAccounts need no facts: their uid is in ``objects``.

No secret or token is ever read: only names, drivers and audiences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.k8s.json_fields import get_map, get_str, iter_objects, join
from app.k8s.kinds import CSIDRIVER, POD, PV, PVC
from app.k8s.pod_references import is_mirror

# In-tree volume sources with CSI translation (csi-translation-lib ``inTreePlugins``) -> CSI driver.
# Every one of them translates both inline volumes and PVs; the key is the same in both specs.
IN_TREE_CSI_DRIVERS: dict[str, str] = {
    "gcePersistentDisk": "pd.csi.storage.gke.io",
    "awsElasticBlockStore": "ebs.csi.aws.com",
    "cinder": "cinder.csi.openstack.org",
    "azureDisk": "disk.csi.azure.com",
    "azureFile": "file.csi.azure.com",
    "vsphereVolume": "csi.vsphere.vmware.com",
    "portworxVolume": "pxd.portworx.com",
    "rbd": "rbd.csi.ceph.com",
}

# The kinds that have facts (service accounts need only their uid, which ``objects`` holds).
FACT_KINDS: frozenset[str] = frozenset({POD, PV, PVC, CSIDRIVER})

# What a pod volume leads to, for the audience check (upstream's switch, in its order).
VIA_CSI = "csi"  # a CSI driver, directly (inline CSI, or an in-tree volume translated to CSI)
VIA_PVC = "pvc"  # a claim: PVC -> PV -> CSI driver (ephemeral volumes name ``<pod>-<volume>``)


@dataclass(frozen=True)
class VolumeFact:
    """One pod volume: the token audiences it projects, and where its CSI driver comes from."""

    audiences: tuple[str, ...] = ()
    via: str = ""  # VIA_CSI, VIA_PVC or "" (neither)
    target: str = ""  # the driver (VIA_CSI) or claim name (VIA_PVC)


@dataclass(frozen=True)
class PodFacts:
    service_account: str
    mirror: bool
    volumes: tuple[VolumeFact, ...]
    # signerName of every podCertificate projected source, in volume order.
    signers: tuple[str, ...]


def _projected_sources(volume: Mapping[str, Any], path: str) -> list[tuple[str, Mapping[str, Any]]]:
    projected = get_map(volume, "projected", path)
    if projected is None:
        return []
    return list(iter_objects(projected, "sources", join(path, "projected")))


def _volume_fact(pod_name: str, path: str, volume: Mapping[str, Any]) -> VolumeFact:
    audiences: list[str] = []
    for source_path, source in _projected_sources(volume, path):
        token = get_map(source, "serviceAccountToken", source_path)
        if token is not None:
            audiences.append(get_str(token, "audience", join(source_path, "serviceAccountToken")))
    ephemeral = get_map(volume, "ephemeral", path)
    if (
        ephemeral is not None
        and get_map(ephemeral, "volumeClaimTemplate", join(path, "ephemeral")) is not None
    ):
        # ephemeral.VolumeClaimName: the claim an ephemeral volume's template creates.
        return VolumeFact(tuple(audiences), VIA_PVC, f"{pod_name}-{get_str(volume, 'name', path)}")
    claim = get_map(volume, "persistentVolumeClaim", path)
    if claim is not None:
        return VolumeFact(
            tuple(audiences), VIA_PVC, get_str(claim, "claimName", join(path, "persistentVolumeClaim"))
        )
    csi = get_map(volume, "csi", path)
    if csi is not None:
        return VolumeFact(tuple(audiences), VIA_CSI, get_str(csi, "driver", join(path, "csi")))
    for in_tree, driver in IN_TREE_CSI_DRIVERS.items():
        if get_map(volume, in_tree, path) is not None:
            return VolumeFact(tuple(audiences), VIA_CSI, driver)
    return VolumeFact(tuple(audiences))


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    """Raises ``FieldError`` for a walked field of the wrong JSON type."""
    meta = get_map(pod, "metadata", "") or {}
    name = get_str(meta, "name", "metadata")
    spec = get_map(pod, "spec", "") or {}
    volumes: list[VolumeFact] = []
    signers: list[str] = []
    for path, volume in iter_objects(spec, "volumes", "spec"):
        volumes.append(_volume_fact(name, path, volume))
        for source_path, source in _projected_sources(volume, path):
            certificate = get_map(source, "podCertificate", source_path)
            if certificate is not None:
                signers.append(get_str(certificate, "signerName", join(source_path, "podCertificate")))
    return PodFacts(
        service_account=get_str(spec, "serviceAccountName", "spec"),
        mirror=is_mirror(pod),
        volumes=tuple(volumes),
        signers=tuple(signers),
    )


def pv_csi_driver(pv: Mapping[str, Any]) -> str:
    """The PV's CSI driver: ``spec.csi.driver``, or the driver its in-tree source translates to, or ""."""
    spec = get_map(pv, "spec", "") or {}
    csi = get_map(spec, "csi", "spec")
    if csi is not None:
        return get_str(csi, "driver", "spec.csi")
    for in_tree, driver in IN_TREE_CSI_DRIVERS.items():
        if get_map(spec, in_tree, "spec") is not None:
            return driver
    return ""


def pvc_volume_name(pvc: Mapping[str, Any]) -> str:
    return get_str(get_map(pvc, "spec", "") or {}, "volumeName", "spec")


def csidriver_audiences(driver: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.tokenRequests[].audience`` in order ("" for a request without one)."""
    spec = get_map(driver, "spec", "") or {}
    return tuple(
        get_str(request, "audience", path) for path, request in iter_objects(spec, "tokenRequests", "spec")
    )


def derive_facts(kind: str, obj: Mapping[str, Any]) -> bytes | None:
    """The facts document stored for a watched object of ``kind`` (None: nothing to store)."""
    doc: Any
    if kind == POD:
        facts = pod_facts(obj)
        doc = {
            "sa": facts.service_account,
            "mirror": facts.mirror,
            "volumes": [[list(v.audiences), v.via, v.target] for v in facts.volumes],
            "signers": list(facts.signers),
        }
    elif kind == PV:
        doc = {"driver": pv_csi_driver(obj)}
    elif kind == PVC:
        doc = {"volumeName": pvc_volume_name(obj)}
    elif kind == CSIDRIVER:
        doc = {"audiences": list(csidriver_audiences(obj))}
    else:
        return None
    return orjson.dumps(doc)


def _doc(text: str | bytes) -> Mapping[str, Any]:
    doc = orjson.loads(text)
    if not isinstance(doc, Mapping):
        raise ValueError("stored admission facts are not a JSON object")
    return doc


def pod_facts_from_json(text: str | bytes) -> PodFacts:
    doc = _doc(text)
    return PodFacts(
        service_account=str(doc["sa"]),
        mirror=bool(doc["mirror"]),
        volumes=tuple(VolumeFact(tuple(a), str(via), str(t)) for a, via, t in doc["volumes"]),
        signers=tuple(str(s) for s in doc["signers"]),
    )


def field_from_json(text: str | bytes, key: str) -> Any:
    """One field of a stored PV, PVC or CSIDriver facts document."""
    return _doc(text)[key]
