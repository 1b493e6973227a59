"""The fake API server in its own process, filled with a generated cluster, driven over a pipe.

Its memory and CPU then never count against the process being measured. The
cluster is generated inside the child (300k objects never cross the pipe): the
generator's pods plus one PersistentVolume per pod (``pvs_per_pod``), bound to
the pod's claim when it has one. The generator's own PVs, nodes,
VolumeAttachments and ResourceSlices are left out: the benchmark is about pods
and PVs.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.generate import generate
from benchmarks.shapes import CSI_CONTROLLER_SECRET, CSI_DRIVER, CSI_STAGE_SECRET, SYSTEM_NAMESPACE, Shape

Obj = dict[str, Any]


def pod_claim(pod: Obj) -> str | None:
    for volume in pod.get("spec", {}).get("volumes", ()):
        claim = volume.get("persistentVolumeClaim")
        if claim:
            return str(claim["claimName"])
    return None


def pv_for_pod(pod: Obj, copy: int = 0) -> Obj:
    """A bound CSI volume in the pod's namespace, shaped like the generator's PVs."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    claim = pod_claim(pod) if copy == 0 else None
    claim = claim or f"data-{copy}-{name}"
    digest = hashlib.blake2b(f"{ns}/{claim}".encode(), digest_size=16).hexdigest()
    pv = f"pvc-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv,
            "uid": f"uid-{pv}",
            "annotations": {"pv.kubernetes.io/provisioned-by": CSI_DRIVER},
            "finalizers": ["kubernetes.io/pv-protection"],
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "10Gi"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim},
            "csi": {
                "driver": CSI_DRIVER,
                "volumeHandle": f"vol-{digest[:17]}",
                "fsType": "ext4",
                "nodeStageSecretRef": {"name": CSI_STAGE_SECRET, "namespace": ns},
                "nodePublishSecretRef": {"name": f"{pv}-publish", "namespace": ns},
                "controllerPublishSecretRef": {"name": CSI_CONTROLLER_SECRET, "namespace": SYSTEM_NAMESPACE},
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "bench-csi",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }


def cluster(shape: Shape, seed: int, pvs_per_pod: int = 1) -> Iterator[tuple[str, Obj]]:
    """(resource, object): the shape's pods, then ``pvs_per_pod`` PVs for each pod."""
    pods = [o for o in generate(shape, seed) if o["kind"] == "Pod"]
    for pod in pods:
        yield "pods", pod
    for copy in range(pvs_per_pod):
        for pod in pods:
            yield "persistentvolumes", pv_for_pod(pod, copy)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(conn: Connection, shape: Shape, seed: int, pvs_per_pod: int, kubeconfig: str) -> None:
    """Child entry point: load the cluster, serve it, answer commands until "stop"."""
    from tests.fake_apiserver import FakeApiServer

    server = FakeApiServer().start()
    try:
        started = time.perf_counter()
        counts: dict[str, int] = {}
        batch: dict[str, list[Obj]] = {}
        for resource, obj in cluster(shape, seed, pvs_per_pod):
            batch.setdefault(resource, []).append(obj)
        for resource, objs in batch.items():
            counts[resource] = server.load(resource, objs)
        del batch
        server.write_kubeconfig(Path(kubeconfig))
        conn.send(("ready", counts, time.perf_counter() - started))
        while True:
            command, *args = conn.recv()
            if command == "create":
                server.create(*args)
                conn.send(None)
            elif command == "delete":
                server.delete(*args)
                conn.send(None)
            elif command == "resource_version":
                conn.send(server.resource_version)
            elif command == "stop":
                break
    finally:
        server.stop()
        conn.send("stopped")


class ApiServerProcess:
    """``with ApiServerProcess(shape, seed, kubeconfig=path) as api: ...``; ``api.create(...)``."""

    def __init__(self, shape: Shape, seed: int, *, kubeconfig: Path, pvs_per_pod: int = 1) -> None:
        self.kubeconfig = kubeconfig
        self.counts: dict[str, int] = {}
        self.load_seconds = 0.0
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child_conn, shape, seed, pvs_per_pod, str(kubeconfig)),
            name="fake-apiserver",
            daemon=True,
        )

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def start(self, timeout: float = 900.0) -> ApiServerProcess:
        self._proc.start()
        try:
            if not self._conn.poll(timeout):
                raise RuntimeError("the fake API server did not start in time")
            _, self.counts, self.load_seconds = self._conn.recv()
        except EOFError:
            self.stop()
            raise RuntimeError("the fake API server process exited while loading") from None
        except BaseException:
            self.stop()
            raise
        return self

    def create(self, resource: str, obj: Obj) -> None:
        """Returns once the object is stored and its event queued to the watches."""
        self._conn.send(("create", resource, obj))
        self._conn.recv()

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        self._conn.send(("delete", resource, name, namespace))
        self._conn.recv()

    def resource_version(self) -> str:
        self._conn.send(("resource_version",))
        return str(self._conn.recv())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("stop",))
                self._conn.poll(15)
            except (OSError, EOFError):
                pass
            self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()

    def __enter__(self) -> ApiServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
