"""Two `nodeauthz run` replicas on one database: one writer, reads on both, takeover when it dies.

Real processes (each a webhook plus a leader-elected writer child), the fake API
server speaking list/watch, and SubjectAccessReviews over HTTP.
"""

from __future__ import annotations

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

from app.ha.lease import read_lease
from tests.builders import pod
from tests.fake_apiserver import FakeApiServer

LEASE_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, name: str, url: str, kubeconfig: Path, log: Path) -> None:
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
                str(LEASE_S),
                "--holder",
                name,
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
        for r in replicas:
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
        for r in replicas:
            print(f"--- {r.name} log ---\n{r.log.read_text(errors='replace')[-3000:]}")


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
