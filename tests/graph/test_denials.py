"""The denial report's table: aggregation, two replicas adding to one row, retention, --explain."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from app.graph.database import make_engine
from app.graph.denials import (
    DenialKey,
    Tally,
    prune_denials,
    query_denials,
    record_denials,
    referenced_objects,
)
from app.graph.store import GraphStore
from tests.web.test_authorize import load_sample

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TLS = DenialKey("node-c", "get", "secrets", "", "shop", "web-tls", "no relationship")
GHOST = DenialKey("node-c", "get", "secrets", "", "shop", "unused", "no relationship")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_batches_add_up_and_keep_first_and_last_seen(engine: Engine) -> None:
    record_denials(engine, {TLS: Tally(2, at(10), at(20)), GHOST: Tally(1, at(5), at(5))})
    record_denials(engine, {TLS: Tally(3, at(0), at(15))})  # an earlier first, an earlier last
    with engine.connect() as conn:
        rows = query_denials(conn)
    assert [(r.key, r.count, r.first_seen, r.last_seen) for r in rows] == [
        (TLS, 5, at(0), at(20)),
        (GHOST, 1, at(5), at(5)),
    ]


def test_filters_by_time_node_and_resource(engine: Engine) -> None:
    other = DenialKey("node-a", "list", "configmaps", "", "shop", "x", "r")
    record_denials(engine, {TLS: Tally(1, at(0), at(0)), other: Tally(1, at(0), at(100))})
    with engine.connect() as conn:
        assert [r.key for r in query_denials(conn, since=at(50))] == [other]
        assert [r.key for r in query_denials(conn, node="node-c")] == [TLS]
        assert [r.key for r in query_denials(conn, resource="configmaps")] == [other]


def test_two_replicas_writing_one_row_add_up_exactly(engine: Engine, database_url: str) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]
    errors: list[BaseException] = []

    def replica(e: Engine, offset: int) -> None:
        try:
            for i in range(20):
                record_denials(
                    e, {TLS: Tally(2, at(offset + i), at(offset + i)), GHOST: Tally(1, at(i), at(i))}
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(e, n * 100)) for n, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert not errors
    with engine.connect() as conn:
        rows = {r.key: r for r in query_denials(conn)}
    assert rows[TLS].count == 80 and rows[GHOST].count == 40
    assert (rows[TLS].first_seen, rows[TLS].last_seen) == (at(0), at(119))


def test_retention_removes_rows_not_seen_since(engine: Engine) -> None:
    record_denials(engine, {TLS: Tally(1, at(0), at(0)), GHOST: Tally(1, at(0), at(60))})
    assert prune_denials(engine, at(30)) == 1
    with engine.connect() as conn:
        assert [r.key for r in query_denials(conn)] == [GHOST]


def test_long_values_are_cut_to_fit(engine: Engine) -> None:
    long = DenialKey("n" * 300, "v" * 50, "secrets", "", "ns", "x" * 400, "r" * 600)
    record_denials(engine, {long: Tally(1, at(0), at(0))})
    with engine.connect() as conn:
        (row,) = query_denials(conn)
    assert (len(row.key.node), len(row.key.verb), len(row.key.name), len(row.key.reason)) == (
        253,
        32,
        253,
        512,
    )


def test_explain_says_whether_anything_uses_the_object(engine: Engine, store: GraphStore) -> None:
    load_sample(store)
    pods = DenialKey("node-c", "get", "pods", "", "shop", "web-7d4b9-x2k8f", "r")
    record_denials(engine, {k: Tally(1, at(0), at(0)) for k in (TLS, GHOST, pods)})
    with engine.connect() as conn:
        rows = {r.key: r.referenced for r in referenced_objects(conn, query_denials(conn))}
    assert rows == {TLS: True, GHOST: False, pods: True}
