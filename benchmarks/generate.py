"""Generate a synthetic cluster as a ``kubectl get -o json``-shaped List.

    python -m benchmarks.generate --preset small|large|million [--nodes N ...] [--seed S] [--out FILE|-]

Objects come out grouped by kind (Nodes, Pods, PersistentVolumes, VolumeAttachments,
ResourceSlices) and are streamed, so neither the large preset nor the million one
(33,333 nodes, 999,990 pods) ever sits in memory.
Secrets, configmaps, service accounts and claims are only referenced, never emitted:
the graph is built from references. Names and placement come from
``benchmarks.shapes.Layout``; uids, timestamps and image tags from a seeded rng.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import orjson

from benchmarks.shapes import (
    CSI_CONTROLLER_SECRET,
    CSI_DRIVER,
    CSI_STAGE_SECRET,
    DRA_DRIVER,
    PRESETS,
    PULL_SECRET,
    ROOT_CA_CONFIGMAP,
    SYSTEM_NAMESPACE,
    Layout,
    Shape,
    sample_checks,
)

__all__ = ["generate", "write_list", "main", "sample_checks", "Shape", "PRESETS"]

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_MIRROR = "kubernetes.io/config.mirror"
Obj = dict[str, Any]


class _Stamps:
    """Sequential uids, resourceVersions and creation times, all from the seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rv = 1000

    def meta(self, name: str, namespace: str | None = None, **extra: Any) -> Obj:
        self.rv += 1
        m: Obj = {"name": name}
        if namespace is not None:
            m["namespace"] = namespace
        m["uid"] = self.uid()
        m["resourceVersion"] = str(self.rv)
        m["creationTimestamp"] = self.now()
        m.update(extra)
        return m

    def now(self) -> str:
        """The current object's creation time (one second per resourceVersion)."""
        return (_EPOCH + timedelta(seconds=self.rv)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _node(lay: Layout, st: _Stamps, n: int) -> Obj:
    name = lay.node_name(n)
    zone = f"zone-{'abc'[n % 3]}"
    labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "bench.xlarge",
        "topology.kubernetes.io/zone": zone,
    }
    cidr = f"10.{(n >> 8) & 255}.{n & 255}.0/24"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": st.meta(name, labels=labels),
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": f"bench://{zone}/{name}"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": _host_ip(n)},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.34.0", "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def _host_ip(n: int) -> str:
    return f"172.16.{(n >> 8) & 255}.{n & 255}"


def _sa_volume(lay: Layout, key: object) -> Obj:
    """The projected service-account volume every non-mirror pod gets (token + CA + namespace)."""
    return {
        "name": f"kube-api-access-{lay.hash_name('sa', key)}",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def _status(category: str, n: int | None, slot: int, st: _Stamps) -> Obj:
    if n is None:
        return {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }
    phase = {"running": "Running", "succeeded": "Succeeded", "failed": "Failed"}[category]
    ready = "True" if phase == "Running" else "False"
    return {
        "phase": phase,
        "hostIP": _host_ip(n),
        "podIP": f"10.{(n >> 8) & 255}.{n & 255}.{slot % 250 + 2}",
        "qosClass": "BestEffort",
        "startTime": st.now(),
        "conditions": [{"type": "Ready", "status": ready}, {"type": "PodScheduled", "status": "True"}],
    }


def _system_pods(lay: Layout, st: _Stamps, n: int, node_uid: str) -> Iterator[Obj]:
    node = lay.node_name(n)
    for d in range(lay.shape.daemonsets):
        ds = lay.daemonset_name(d)
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": st.meta(
                lay.daemonset_pod(d, n),
                SYSTEM_NAMESPACE,
                labels={"app": ds},
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": ds,
                        "uid": lay.hash_uid("ds", d),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            ),
            "spec": {
                "nodeName": node,
                "serviceAccountName": ds,
                "containers": [
                    {
                        "name": "agent",
                        "image": f"bench/{ds}:1.0.{d}",
                        "volumeMounts": [{"name": "tls", "mountPath": "/etc/tls"}],
                    }
                ],
                "volumes": [{"name": "tls", "secret": {"secretName": f"{ds}-tls"}}, _sa_volume(lay, (n, d))],
            },
            "status": _status("running", n, d, st),
        }
    for m in range(lay.shape.mirror_pods_per_node):
        config_hash = lay.hash_name("static", n, m, width=16)
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": st.meta(
                lay.mirror_pod(m, n),
                SYSTEM_NAMESPACE,
                labels={"tier": "node"},
                annotations={
                    _MIRROR: config_hash,
                    "kubernetes.io/config.hash": config_hash,
                    "kubernetes.io/config.source": "file",
                },
                ownerReferences=[
                    {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}
                ],
            ),
            "spec": {
                "nodeName": node,
                "containers": [{"name": "static", "image": f"bench/static-{m}:1.0"}],
                "volumes": [{"name": "host", "hostPath": {"path": "/etc/static", "type": "Directory"}}],
            },
            "status": _status("running", n, lay.shape.daemonsets + m, st),
        }


def _workload_refs(lay: Layout, w: int, pod: str) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(env, envFrom, volumes) referencing the pod's unique and shared secrets/configmaps."""
    s, local = lay.shape, lay.local_index(w)
    env: list[Obj] = []
    env_from: list[Obj] = []
    vols: list[Obj] = []
    for i in range(s.unique_secrets_per_pod):
        name = lay.unique_secret(pod, i)
        form = (local + i) % 3  # spread over the three ways a pod names a secret
        if form == 0:
            vols.append({"name": f"secret-{i}", "secret": {"secretName": name}})
        elif form == 1:
            env.append({"name": f"SECRET_{i}", "valueFrom": {"secretKeyRef": {"name": name, "key": "value"}}})
        else:
            vols.append({"name": f"bundle-{i}", "projected": {"sources": [{"secret": {"name": name}}]}})
    for i in range(s.unique_configmaps_per_pod):
        name = lay.unique_configmap(pod, i)
        if (local + i) % 2 == 0:
            vols.append({"name": f"config-{i}", "configMap": {"name": name}})
        else:
            env.append(
                {"name": f"CONFIG_{i}", "valueFrom": {"configMapKeyRef": {"name": name, "key": "value"}}}
            )
    for i in range(s.shared_secrets_per_pod):
        env_from.append({"secretRef": {"name": lay.shared_secret(lay.shared_index(w, i))}})
    for i in range(s.shared_configmaps_per_pod):
        env_from.append({"configMapRef": {"name": lay.shared_configmap(lay.shared_index(w, i))}})
    return env, env_from, vols


def _workload_pod(lay: Layout, st: _Stamps, w: int) -> Obj:
    k, j, pod = lay.namespace_of(w), lay.deployment(w), lay.pod_name(w)
    category = lay.category(w)
    n = None if category == "unbound" else lay.node_of(w)
    rs = f"app-{j}-{lay.deployment_hash(k, j)}"
    env, env_from, vols = _workload_refs(lay, w, pod)
    if lay.has_pvc(w):
        vols.append({"name": "data", "persistentVolumeClaim": {"claimName": lay.claim_name(pod)}})
    vols.append(_sa_volume(lay, w))
    container: Obj = {"name": "app", "image": f"bench/app-{j}:1.{st.rng.randrange(40)}.0"}
    if env:  # the API server omits empty lists
        container["env"] = env
    if env_from:
        container["envFrom"] = env_from
    container["volumeMounts"] = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in vols]
    spec: Obj = {
        "serviceAccountName": f"app-{j}",
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "containers": [container],
        "volumes": vols,
        "restartPolicy": "Always" if category in ("running", "unbound") else "Never",
    }
    if j % 4 == 0:  # some deployments have an init container reading shared config
        spec["initContainers"] = [
            {
                "name": "init",
                "image": "bench/init:1.0",
                "envFrom": [{"configMapRef": {"name": lay.shared_configmap(lay.shared_index(w, 0))}}],
            }
        ]
    if n is not None:
        spec["nodeName"] = lay.node_name(n)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": st.meta(
            pod,
            lay.namespace_name(k),
            labels={"app": f"app-{j}", "pod-template-hash": lay.deployment_hash(k, j)},
            ownerReferences=[
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": lay.hash_uid("rs", k, j),
                    "controller": True,
                }
            ],
        ),
        "spec": spec,
        "status": _status(
            category, n, lay.shape.daemonsets + lay.shape.mirror_pods_per_node + w // lay.shape.nodes, st
        ),
    }


def _pv(lay: Layout, st: _Stamps, w: int) -> Obj:
    ns, pv = lay.namespace_name(lay.namespace_of(w)), lay.pv_name(w)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": st.meta(
            pv,
            annotations={"pv.kubernetes.io/provisioned-by": CSI_DRIVER},
            finalizers=["kubernetes.io/pv-protection"],
        ),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "10Gi"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": ns,
                "name": lay.claim_name(lay.pod_name(w)),
                "uid": lay.hash_uid("claim", w),
            },
            "csi": {
                "driver": CSI_DRIVER,
                "volumeHandle": f"vol-{lay.hash_name('handle', w, width=17)}",
                "fsType": "ext4",
                "nodeStageSecretRef": {"name": CSI_STAGE_SECRET, "namespace": ns},
                "nodePublishSecretRef": {"name": lay.pv_publish_secret(pv), "namespace": ns},
                "controllerPublishSecretRef": {"name": CSI_CONTROLLER_SECRET, "namespace": SYSTEM_NAMESPACE},
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "bench-csi",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }


def _volume_attachment(lay: Layout, st: _Stamps, w: int) -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": st.meta(lay.volume_attachment(w), finalizers=[f"external-attacher/{CSI_DRIVER}"]),
        "spec": {
            "attacher": CSI_DRIVER,
            "nodeName": lay.node_name(lay.node_of(w)),
            "source": {"persistentVolumeName": lay.pv_name(w)},
        },
        "status": {"attached": True},
    }


def _resource_slice(lay: Layout, st: _Stamps, n: int, s: int, node_uid: str) -> Obj:
    node = lay.node_name(n)
    devices = [
        {"name": f"gpu-{i}", "attributes": {"index": {"int": i}}, "capacity": {"memory": {"value": "16Gi"}}}
        for i in range(lay.shape.devices_per_slice)
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": st.meta(
            lay.resource_slice(n, s),
            generateName=f"{node}-{DRA_DRIVER}-",
            ownerReferences=[
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}
            ],
        ),
        "spec": {
            "driver": DRA_DRIVER,
            "nodeName": node,
            "devices": devices,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": lay.shape.resource_slices_per_node},
        },
    }


def generate(shape: Shape, seed: int) -> Iterator[Obj]:
    """Yield the cluster's objects, grouped by kind; the same (shape, seed) gives the same objects."""
    lay, st = Layout(shape, seed), _Stamps(seed)
    node_uids: list[str] = []
    for n in range(shape.nodes):
        node = _node(lay, st, n)
        node_uids.append(node["metadata"]["uid"])
        yield node
    for n in range(shape.nodes):
        yield from _system_pods(lay, st, n, node_uids[n])
    for w in range(shape.workload_pods):
        yield _workload_pod(lay, st, w)
    # PVs exist once a claim's pod was scheduled (WaitForFirstConsumer); attachments while it runs.
    with_pv = [w for w in range(shape.workload_pods) if lay.has_pvc(w) and lay.category(w) != "unbound"]
    for w in with_pv:
        yield _pv(lay, st, w)
    for w in with_pv:
        if lay.category(w) == "running":
            yield _volume_attachment(lay, st, w)
    for n in range(shape.nodes):
        for s in range(shape.resource_slices_per_node):
            yield _resource_slice(lay, st, n, s, node_uids[n])


def write_list(objects: Iterable[Mapping[str, Any]], fp: BinaryIO, batch: int = 512) -> int:
    """Stream ``objects`` to binary ``fp`` as one ``kind: List`` document; return how many were written."""
    fp.write(b'{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[\n')
    count, chunk = 0, []
    for obj in objects:
        chunk.append(orjson.dumps(obj))
        count += 1
        if len(chunk) >= batch:
            fp.write((b",\n" if count > len(chunk) else b"") + b",\n".join(chunk))
            chunk = []
    if chunk:
        fp.write((b",\n" if count > len(chunk) else b"") + b",\n".join(chunk))
    fp.write(b"\n]}\n")
    return count


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="-", help="output file, or - for stdout")
    p.add_argument("--checks", metavar="FILE", help="also write sample_checks() as JSON to FILE")
    for f in fields(Shape):  # every Shape field can be overridden: --pods-per-node 10
        kind = float if isinstance(f.default, float) else int
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None, dest=f.name)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(Shape) if getattr(args, f.name) is not None}
    try:
        shape = replace(PRESETS[args.preset], **overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.checks:
        with open(args.checks, "wb") as cf:
            checks = [c._asdict() for c in sample_checks(shape, args.seed)]
            cf.write(orjson.dumps(checks, option=orjson.OPT_INDENT_2))
    if args.out == "-":
        try:
            write_list(generate(shape, args.seed), sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # e.g. piped into `head`: not an error worth a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    else:
        with open(args.out, "wb", buffering=1 << 20) as fp:
            write_list(generate(shape, args.seed), fp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
