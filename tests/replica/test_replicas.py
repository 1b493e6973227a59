"""Two `nodeauthz run` replicas on one database: one writer, reads on both, takeover when it dies.

Real processes (each a webhook plus a leader-elected writer child), the fake API
server speaking list/watch, and SubjectAccessReviews over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from app.ha.lease_record import read_lease
from tests.builders import pod
from tests.fake_apiserver import FakeApiServer

LEASE_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(
        self,
        name: str,
        url: str,
        kubeconfig: Path,
        log: Path,
        lease_s: float = LEASE_S,
        extra: tuple[str, ...] = (),  # more flags of `run`
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "--database-url",
                url,
                "run",
                "--port",
                str(self.port),
                "--kubeconfig",
                str(kubeconfig),
                "--lease-duration",
                str(lease_s),
                "--holder",
                name,
                *extra,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def allowed(self, node_name: str, secret: str, namespace: str = "shop") -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {
                "user": f"system:node:{node_name}",
                "groups": ["system:nodes", "system:authenticated"],
                "resourceAttributes": {
                    "verb": "get",
                    "version": "v1",
                    "resource": "secrets",
                    "namespace": namespace,
                    "name": secret,
                },
            },
            "status": {"allowed": False},
        }
        resp = httpx.post(f"http://127.0.0.1:{self.port}/authorize", json=review, timeout=5)
        resp.raise_for_status()
        return bool(resp.json()["status"]["allowed"])

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the webhook and its writer child: a crashed pod
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            finally:
                if self.proc.poll() is None:
                    os.killpg(self.proc.pid, signal.SIGKILL)
        return int(self.proc.returncode)


def kill_and_show_logs(replicas: list[Replica]) -> None:
    for r in replicas:
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
    for r in replicas:
        print(f"--- {r.name} log ---\n{r.log.read_text(errors='replace')[-3000:]}")


def writer_child(parent: int) -> int:
    """The pid of the writer child of ``nodeauthz run`` process ``parent`` (multiprocessing's spawn_main)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        if ppid == parent and b"spawn_main" in cmdline:
            return int(stat.parent.name)
    raise AssertionError(f"process {parent} has no writer child")


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def lease_of(engine: Engine) -> Any:
    with engine.connect() as conn:
        return read_lease(conn)


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def test_one_writer_reads_on_both_takeover_on_death(
    database_url: str, engine: Engine, cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, kubeconfig = cluster
    replicas = [
        Replica(n, database_url, kubeconfig, tmp_path / f"{n}.log") for n in ("replica-a", "replica-b")
    ]
    try:
        for r in replicas:
            eventually(lambda r=r: r.get("/readyz").status_code == 200, f"{r.name} ready")
            assert r.allowed("n1", "web-tls") and not r.allowed("n2", "web-tls")
        with engine.connect() as conn:
            lease = read_lease(conn)
        assert lease is not None and lease.holder in {"replica-a", "replica-b"}
        writer = next(r for r in replicas if r.name == lease.holder)
        survivor = next(r for r in replicas if r is not writer)

        # A pod bound while both run shows up on both (one writer, shared graph).
        server.create("pods", pod("api", "shop", "n2", secrets=("api-key",)))
        for r in replicas:
            eventually(lambda r=r: r.allowed("n2", "api-key"), f"{r.name} sees the new pod")

        writer.kill()
        server.create("pods", pod("db", "shop", "n1", secrets=("db-pass",)))
        server.delete("pods", "web", "shop")
        eventually(
            lambda: survivor.allowed("n1", "db-pass"), "the survivor to take over and sync", LEASE_S * 10
        )
        eventually(lambda: not survivor.allowed("n1", "web-tls"), "the deletion to converge")
        with engine.connect() as conn:
            taken = read_lease(conn)
        assert taken is not None and taken.holder == survivor.name and taken.epoch == lease.epoch + 1

        assert survivor.stop() == 0  # SIGTERM: graceful, and the lease is released for a peer
        with engine.connect() as conn:
            released = read_lease(conn)
        assert released is not None and released.expired
    finally:
        kill_and_show_logs(replicas)


def test_a_replica_whose_writer_cannot_start_exits_non_zero(database_url: str, tmp_path: Path) -> None:
    """No silent webhook without a writer: the kubelet must see the replica fail and restart it."""
    replica = Replica("broken", database_url, tmp_path / "missing-kubeconfig", tmp_path / "broken.log")
    try:
        code = replica.proc.wait(timeout=60)
    finally:
        if replica.proc.poll() is None:
            os.killpg(replica.proc.pid, signal.SIGKILL)
    log = replica.log.read_text(errors="replace")
    assert code == 1, log[-2000:]
    assert "writer process exited with code 1; stopping this replica" in log


def test_the_writer_child_stops_when_its_webhook_is_killed(
    database_url: str, engine: Engine, cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    """SIGKILL of the webhook (OOM kill, a crash) must not leave its writer holding the lease, headless."""
    _, kubeconfig = cluster
    a = Replica("replica-a", database_url, kubeconfig, tmp_path / "a.log")
    b: Replica | None = None
    try:
        eventually(lambda: a.get("/readyz").status_code == 200, "replica-a ready")
        lease = eventually(lambda: (info := lease_of(engine)) and info.holder == a.name and info, "a writes")
        b = Replica("replica-b", database_url, kubeconfig, tmp_path / "b.log")
        eventually(lambda: b.get("/readyz").status_code == 200, "replica-b ready")
        child = writer_child(a.proc.pid)

        os.kill(a.proc.pid, signal.SIGKILL)  # the parent only: its writer child is orphaned
        a.proc.wait(timeout=10)
        eventually(lambda: not running(child), "the orphaned writer to exit", 10)
        taken = eventually(
            lambda: (info := lease_of(engine)) and info.holder == "replica-b" and info, "b to take over"
        )
        assert taken.epoch == lease.epoch + 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(a.proc.pid, signal.SIGKILL)  # the orphan, should the test have failed
        kill_and_show_logs([r for r in (a, b) if r is not None])


def test_a_killed_writer_is_replaced_before_its_lease_would_have_expired(
    database_url: str, engine: Engine, cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    """Its liveness lock dies with it, so the survivor need not wait out the lease."""
    server, kubeconfig = cluster
    lease_s = 20.0
    replicas = [
        Replica(n, database_url, kubeconfig, tmp_path / f"{n}.log", lease_s)
        for n in ("replica-a", "replica-b")
    ]
    try:
        for r in replicas:
            eventually(lambda r=r: r.get("/readyz").status_code == 200, f"{r.name} ready")
        lease = lease_of(engine)
        writer = next(r for r in replicas if r.name == lease.holder)
        survivor = next(r for r in replicas if r is not writer)

        writer.kill()
        server.create("pods", pod("db", "shop", "n1", secrets=("db-pass",)))
        # Bounded by the lease: waiting out a 20 s lease would time out here.
        eventually(
            lambda: survivor.allowed("n1", "db-pass"), "the survivor to take over and sync", lease_s * 0.75
        )
        taken = lease_of(engine)
        assert (taken.holder, taken.epoch) == (survivor.name, lease.epoch + 1)
    finally:
        kill_and_show_logs(replicas)
