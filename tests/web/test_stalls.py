"""A stalled database never freezes the webhook: every answer comes within the check timeout.

The kube-apiserver gives a webhook a few seconds (README: ``timeout: 3s``). When the database
stalls (another process holds a lock that blocks readers; the server is frozen), a check answers
no-opinion with a reason, an admission lookup refuses, readiness says not ready, each within
about ``--check-timeout`` (1 s), and ``/healthz`` answers at once. The faults are real: a lock
held by another process, a PostgreSQL server of the test's own stopped with SIGSTOP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.cli.webhook_commands import load_sample_cluster, sample_review
from tests.pg_server import own_postgres
from tests.replica.test_replicas import free_port
from tests.servers import wait_ready

BOUND_S = 2.5  # the check timeout (1 s) plus scheduling slack on a loaded 2-core machine; well under 3 s
STALL_S = 6.0


def eviction_review() -> dict[str, Any]:
    """node-a evicting its own pod: NodeRestriction must look the pod up in the store."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e1",
            "kind": {"group": "policy", "version": "v1", "kind": "Eviction"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "eviction",
            "name": "web-7d4b9-x2k8f",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:node:node-a",
                "groups": ["system:nodes", "system:authenticated"],
            },
            "object": {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": "web-7d4b9-x2k8f"},
            },
            "oldObject": None,
            "dryRun": False,
        },
    }


@contextmanager
def serving(url: str, log: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        # Database faults, not sync state, are under test here: readiness is database and schema only.
        [
            sys.executable,
            "-m",
            "app",
            "--database-url",
            url,
            "serve",
            "--port",
            str(port),
            "--require-synced",
            "none",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    resp = call()
    return time.monotonic() - started, resp


def assert_bounded_while_stalled(base: str) -> None:
    review = sample_review("node-a", "shop", "web-tls")
    with ThreadPoolExecutor(4) as pool:
        checks = [
            pool.submit(timed, lambda: httpx.post(f"{base}/authorize", json=review, timeout=30))
            for _ in range(3)
        ]
        time.sleep(0.2)  # the checks are waiting on the database now
        health_s, health = timed(lambda: httpx.get(f"{base}/healthz", timeout=30))
        admit_s, admit = timed(lambda: httpx.post(f"{base}/admit", json=eviction_review(), timeout=30))
        ready_s, ready = timed(lambda: httpx.get(f"{base}/readyz", timeout=30))
        answers = [f.result() for f in checks]
    assert health.status_code == 200 and health_s < 0.5, health_s
    for seconds, resp in answers:
        status = resp.json()["status"]
        assert seconds < BOUND_S, seconds
        assert status["allowed"] is False and status["reason"].startswith("nodeauthz: graph check failed")
    assert admit_s < BOUND_S, admit_s
    assert admit.json()["response"]["allowed"] is False and admit.json()["response"]["status"]["code"] == 500
    assert ready_s < BOUND_S and ready.status_code == 503, (ready_s, ready.text)


def allowed(base: str) -> bool:
    review = sample_review("node-a", "shop", "web-tls")
    return bool(httpx.post(f"{base}/authorize", json=review, timeout=10).json()["status"]["allowed"])


# Another process holds the WAL-index read locks (bytes 123-127 of the -shm file, SQLite's WAL
# format): what a process recovering a crashed writer's WAL does, or one paused in mid-recovery.
# Readers then wait inside SQLite's read-lock retry loop, whatever their busy timeout.
LOCK_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 5, 123, os.SEEK_SET)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_sqlite_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "graph.db"
    url = f"sqlite:///{path}"
    load_sample_cluster(url)
    with serving(url, tmp_path / "serve.log") as base:
        assert allowed(base)
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path), str(STALL_S)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            assert_bounded_while_stalled(base)
        finally:
            holder.wait(timeout=STALL_S + 10)
        assert allowed(base)  # the lock is gone: answers are right again, no restart needed


def test_postgresql_server_frozen(tmp_path: Path) -> None:
    with own_postgres() as server:
        with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE DATABASE nodeauthz")
        url = server.url("nodeauthz")
        load_sample_cluster(url)
        with serving(url, tmp_path / "serve.log") as base:
            assert allowed(base)
            with server.stalled():
                assert_bounded_while_stalled(base)
            deadline = time.monotonic() + 10
            while not allowed(base):  # broken connections are dropped and reopened by later checks
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
            assert json.loads(httpx.get(f"{base}/readyz", timeout=5).text)["ready"] is True
