"""`nodeauthz run --read-database-url`: a replica whose checks read from a hot standby.

Real processes: a PostgreSQL primary and a hot standby of the test's own (never the shared
server), the fake API server, and a `nodeauthz run` replica whose writer child syncs into the
primary while its webhook answers from the standby. What a user would notice: a pod deleted on the
API server loses access through the standby within the bound; a standby whose replay stops is
refused (no-opinion with the reason, fast) and the replica goes unready; a frozen standby fails
closed within the check deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_apiserver import FakeApiServer
from tests.pg_server import OwnServer, own_standby
from tests.replica.test_replicas import Replica, eventually, kill_and_show_logs
from tests.standby_pair import caught_up, migrated_database, migrated_primary
from tests.web.test_stalls import assert_bounded_while_stalled, eviction_review

MAX_LAG_S = 2.0
SLACK_S = 2.0  # the writer's own event -> commit, sampling, a loaded 2-core machine


@pytest.fixture(scope="module")
def primary() -> Iterator[OwnServer]:
    with migrated_primary() as server:
        yield server


@pytest.fixture
def database(primary: OwnServer) -> str:
    """Each test's own database (a fresh fake API server's resourceVersions start over)."""
    name = f"nodeauthz_{uuid.uuid4().hex[:8]}"
    migrated_database(primary, name)
    return name


@pytest.fixture
def standby(primary: OwnServer, database: str) -> Iterator[OwnServer]:
    with own_standby(primary) as server:
        caught_up(primary, server)
        yield server


@pytest.fixture
def replica(
    primary: OwnServer, standby: OwnServer, database: str, cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> Iterator[Replica]:
    _, kubeconfig = cluster
    flags = ("--read-database-url", standby.url(database), "--max-read-lag", str(MAX_LAG_S))
    r = Replica("standby-reader", primary.url(database), kubeconfig, tmp_path / "replica.log", extra=flags)
    try:
        eventually(lambda: r.get("/readyz").status_code == 200, "the replica ready", 60)
        yield r
    finally:
        kill_and_show_logs([r])


def eviction(node: str, name: str) -> dict[str, Any]:
    review = eviction_review()
    request = review["request"]
    request.update(name=name, namespace="shop")
    request["userInfo"]["username"] = f"system:node:{node}"
    request["object"]["metadata"]["name"] = name
    return review


def review_reason(r: Replica, node: str, secret: str) -> tuple[bool, str, float]:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:node:{node}",
            "groups": ["system:nodes", "system:authenticated"],
            "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "shop", "name": secret},
        },
    }
    started = time.monotonic()
    status = httpx.post(f"http://127.0.0.1:{r.port}/authorize", json=review, timeout=10).json()["status"]
    return bool(status["allowed"]), status.get("reason", ""), time.monotonic() - started


def test_checks_come_from_the_standby_and_a_deleted_pod_loses_access_within_the_bound(
    primary: OwnServer, standby: OwnServer, replica: Replica, cluster: tuple[FakeApiServer, Path]
) -> None:
    server, _ = cluster
    assert replica.get("/readyz").json()["checks"]["read_replica"] == "ok"
    eventually(lambda: replica.allowed("n1", "web-tls"), "the pod synced through the standby")
    # The webhook's reader connections are on the standby; the primary has none.
    readers = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nodeauthz-reader'"
    assert standby.sql(readers) >= 1 and primary.sql(readers) == 0

    server.delete("pods", "web", "shop")
    deleted = time.monotonic()
    eventually(lambda: not replica.allowed("n1", "web-tls"), "the deletion seen through the standby", 30)
    took = time.monotonic() - deleted
    assert took < MAX_LAG_S + SLACK_S, took
    allowed, reason, _ = review_reason(replica, "n1", "web-tls")
    assert not allowed and reason == "no relationship found between node 'n1' and this object"


def test_a_standby_whose_replay_stops_is_refused_fast_and_the_replica_goes_unready(
    standby: OwnServer, replica: Replica, cluster: tuple[FakeApiServer, Path]
) -> None:
    server, _ = cluster
    eventually(lambda: replica.allowed("n1", "web-tls"), "the pod synced through the standby")
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        server.delete("pods", "web", "shop")  # committed on the primary, not replayed on the standby
        deleted = time.monotonic()
        ready = eventually(
            lambda: (resp := replica.get("/readyz")).status_code == 503 and resp.json(), "unready", 30
        )
        assert time.monotonic() - deleted < MAX_LAG_S + SLACK_S
        assert f"behind the primary (bound {MAX_LAG_S:g}s)" in ready["checks"]["read_replica"], ready
        assert ready["checks"]["database"] == "ok"  # the primary is fine: only the standby lags
        for _ in range(5):
            allowed, reason, seconds = review_reason(replica, "n1", "web-tls")
            assert not allowed and seconds < 1.0 + SLACK_S, (allowed, seconds)
            assert reason.startswith("nodeauthz: graph check failed: the read replica is "), reason
        # NodeRestriction's look-up of the pod (n1 evicting it) is refused the same way: fail closed.
        admission = httpx.post(
            f"http://127.0.0.1:{replica.port}/admit", json=eviction("n1", "web"), timeout=10
        )
        answer = admission.json()["response"]
        assert not answer["allowed"] and answer["status"]["code"] == 500
        assert "admission check failed: the read replica is " in answer["status"]["message"], answer
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
    eventually(lambda: replica.get("/readyz").status_code == 200, "ready again once replay resumes")
    allowed, reason, _ = review_reason(replica, "n1", "web-tls")
    assert not allowed and reason.startswith("no relationship found")


def test_a_frozen_standby_fails_closed_within_the_deadline(
    primary: OwnServer, standby: OwnServer, replica: Replica
) -> None:
    eventually(lambda: replica.allowed("n1", "web-tls"), "the pod synced through the standby")
    with standby.stalled():
        assert_bounded_while_stalled(f"http://127.0.0.1:{replica.port}")
    eventually(lambda: replica.allowed("n1", "web-tls"), "answers again once the standby thaws", 30)
