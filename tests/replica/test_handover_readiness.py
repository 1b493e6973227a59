"""A graceful writer handover on a quiet cluster never takes the replicas out of service.

The API server here sends no bookmarks (a real one sends one about a minute apart, and an idle
resource sends no events): the new writer must say the graph is current as soon as its watches
are open, not when the next event arrives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.ha.lease_record import read_lease
from tests.builders import node, pod
from tests.fake_apiserver import FakeApiServer
from tests.replica.test_replicas import Replica, eventually

SILENCE_S = 3.0  # the replicas' --max-writer-silence equivalent (env), short so the test is short


@pytest.fixture
def quiet_cluster(tmp_path: Path) -> Iterator[Path]:
    with FakeApiServer() as server:  # bookmark_interval=None: never a bookmark
        server.create("nodes", node("n1"))
        server.create("pods", pod("web", "shop", "n1", secrets=("web-tls",)))
        yield server.write_kubeconfig(tmp_path / "kubeconfig")


def test_replicas_stay_ready_across_a_graceful_handover(
    database_url: str, engine: Engine, quiet_cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODEAUTHZ_MAX_WRITER_SILENCE", str(SILENCE_S))
    first = Replica("replica-a", database_url, quiet_cluster, tmp_path / "a.log")
    eventually(lambda: first.get("/readyz").status_code == 200, "the first writer ready")
    second = Replica("replica-b", database_url, quiet_cluster, tmp_path / "b.log")
    try:
        eventually(lambda: second.get("/readyz").status_code == 200, "the second replica ready")
        assert first.stop() == 0  # SIGTERM: releases the lease, replica-b takes over
        unready: list[str] = []
        deadline = time.monotonic() + 3 * SILENCE_S + 5  # well past the previous writer's allowance
        while time.monotonic() < deadline:
            resp = second.get("/readyz")
            if resp.status_code != 200:
                unready.append(resp.text)
            time.sleep(0.1)
        with engine.connect() as conn:
            lease = read_lease(conn)
        assert lease is not None and lease.holder == "replica-b" and lease.epoch == 2
        assert unready == []
        assert second.allowed("n1", "web-tls")
    finally:
        second.stop()
        first.stop()
        for log in (tmp_path / "a.log", tmp_path / "b.log"):
            if log.exists() and os.environ.get("NODEAUTHZ_TEST_VERBOSE"):
                print(log.read_text())
