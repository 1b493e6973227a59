"""The denial buffer: scripted refusals through two webhooks (replicas) reach one table; overflow drops."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Engine
from starlette.testclient import TestClient

from app.graph.database import make_read_engine
from app.graph.denials import DenialKey, query_denials
from app.graph.store import GraphStore
from app.web.app import create_app
from app.web.denial_buffer import DenialBuffer
from app.web.settings import Settings
from tests.metrics import delta
from tests.web.test_authorize import NO_RELATIONSHIP, load_sample, review, status


def refuse(client: TestClient, node: str, name: str, times: int) -> None:
    for _ in range(times):
        body = review(node, verb="get", resource="secrets", namespace="shop", name=name)
        assert status(client, body)["allowed"] is False


def test_refusals_from_two_replicas_are_one_report(
    database_url: str, store: GraphStore, engine: Engine
) -> None:
    load_sample(store)
    settings = Settings(database_url=database_url, denial_flush_interval=3600)  # flushed on shutdown
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        refuse(one, "node-c", "web-tls", 3)
        refuse(two, "node-c", "web-tls", 2)
        refuse(two, "node-a", "db-volume-key", 1)
        status(one, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))  # allowed
        status(
            one, review(user="alice", groups=["devs"], verb="get", resource="secrets", name="x")
        )  # no node
        before = one.get("/metrics").text
    with engine.connect() as conn:
        rows = query_denials(conn)
    assert [(r.key, r.count) for r in rows] == [
        (DenialKey("node-c", "get", "secrets", "", "shop", "web-tls", NO_RELATIONSHIP.format("node-c")), 5),
        (
            DenialKey(
                "node-a", "get", "secrets", "", "shop", "db-volume-key", NO_RELATIONSHIP.format("node-a")
            ),
            1,
        ),
    ]
    assert rows[0].first_seen <= rows[0].last_seen
    assert "nodeauthz_denials_recorded_total" in before


def test_a_full_buffer_drops_new_refusals_and_counts_them(database_url: str, engine: Engine) -> None:
    buffer = DenialBuffer(
        make_read_engine(database_url), capacity=2, flush_interval=60, retention=timedelta(days=1)
    )
    keys = [DenialKey("n", "get", "secrets", "", "ns", f"s{i}", "r") for i in range(4)]
    from app.web.metrics import render_metrics

    before = render_metrics()[0].decode()
    for key in (keys[0], keys[1], keys[2], keys[0], keys[3], keys[1]):
        buffer.add(key)
    after = render_metrics()[0].decode()
    assert buffer.dropped == 2  # s2 and s3: new refusals with no room; repeats of s0, s1 still count
    assert delta(before, after, "nodeauthz_denials_dropped_total") == 2
    asyncio.run(buffer.close())
    with engine.connect() as conn:
        assert {r.key.name: r.count for r in query_denials(conn)} == {"s0": 2, "s1": 2}


def test_a_failed_flush_drops_the_batch_and_counts_it(tmp_path: object) -> None:
    buffer = DenialBuffer(
        make_read_engine(f"sqlite:///{tmp_path}/absent.db"),
        capacity=10,
        flush_interval=60,
        retention=timedelta(days=1),
    )
    for _ in range(3):
        buffer.add(DenialKey("n", "get", "secrets", "", "ns", "s", "r"))
    asyncio.run(buffer.close())
    assert buffer.dropped == 3
