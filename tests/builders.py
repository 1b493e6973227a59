"""Small builders for raw Kubernetes objects, shaped as the API server sends them."""

from __future__ import annotations

from typing import Any


def pod(
    name: str,
    namespace: str = "default",
    node: str = "",
    *,
    uid: str | None = None,
    rv: str = "1",
    secrets: tuple[str, ...] = (),
    configmaps: tuple[str, ...] = (),
    pvcs: tuple[str, ...] = (),
    service_account: str = "",
    mirror: bool = False,
    phase: str = "Running",
    volumes: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
) -> dict[str, Any]:
    volumes = [{"name": f"s{i}", "secret": {"secretName": s}} for i, s in enumerate(secrets)] + list(volumes)
    volumes += [{"name": f"c{i}", "configMap": {"name": c}} for i, c in enumerate(configmaps)]
    volumes += [{"name": f"p{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(pvcs)]
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "resourceVersion": rv,
    }
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes}
    if node:
        spec["nodeName"] = node
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase}}


def pv(
    name: str,
    claim: tuple[str, str] | None = None,
    *,
    csi_secrets: dict[str, tuple[str, str]] | None = None,
    rv: str = "1",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}}
    if claim:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": claim[0], "name": claim[1]}
    csi: dict[str, Any] = {"driver": "csi.example.com", "volumeHandle": name}
    for field, (ns, secret) in (csi_secrets or {}).items():
        csi[field] = {"namespace": ns, "name": secret}
    spec["csi"] = csi
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "uid": f"uid-pv-{name}", "resourceVersion": rv},
        "spec": spec,
    }


def volume_attachment(name: str, node: str, pv_name: str = "pv", rv: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": name, "uid": f"uid-va-{name}", "resourceVersion": rv},
        "spec": {
            "attacher": "csi.example.com",
            "nodeName": node,
            "source": {"persistentVolumeName": pv_name},
        },
    }


def resource_slice(name: str, node: str, rv: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name, "uid": f"uid-rs-{name}", "resourceVersion": rv},
        "spec": {
            "driver": "gpu.example.com",
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": [],
        },
    }


def node(name: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": uid or f"uid-node-{name}", "resourceVersion": "1"},
    }
