"""Checks answered together: on PostgreSQL the reader sends the checks that wait at the same moment
as one statement (``BATCH_REACH_SQL``, ``app.graph.coalesce``).

Its answers must be the ones single checks give, on random graphs, whether the closure is kept
(a PV's secret answered from it) or not (the recursive walk, the depth bound); and a batch that
stalls or fails must answer no-opinion, with the reason, for every check waiting on it, after which
checks are answered right again. The faults are real: a lock held by another session, a backend
terminated mid-statement.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import given
from sqlalchemy import delete

from app.cli.webhook_commands import sample_review
from app.graph.derivation import derive
from app.graph.dialects.postgresql import PostgresReader, asyncpg_dsn
from app.graph.reach import MAX_DEPTH, Reach
from app.graph.schema import reach_closure_state
from app.graph.store import GraphStore
from app.k8s.feature_gates import DEFAULT_GATES
from app.k8s.kinds import VertexKey
from app.web.authorize import FAILURE_PREFIX, Authorizer
from tests.builders import pod
from tests.graph.test_differential import NODES, SETTINGS, TARGETS, ReferenceGraph, _clear, step_both, steps
from tests.graph.test_reach import chain

Check = tuple[str, str, str, str]

# Nodes and objects the graph may not hold answer "no" in a batch as alone.
CHECKS: list[Check] = [
    (node, t.kind, t.namespace, t.name)
    for node, t in itertools.product((*NODES, "ghost"), (*TARGETS, VertexKey("secret", "a", "missing")))
]


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite checks are answered one by one, inline (SqliteReader.reach_now)")


def _forget_closure(store: GraphStore) -> None:
    """As before a new writer's first write: no closure is trusted, so checks walk the graph."""
    with store.engine.begin() as conn:
        conn.execute(delete(reach_closure_state))


async def _one_by_one(reader: PostgresReader, checks: list[Check]) -> list[Reach]:
    return [await reader.reach(*check) for check in checks]


async def _together(reader: PostgresReader, checks: list[Check]) -> list[Reach]:
    return list(await asyncio.gather(*(reader.reach(*check) for check in checks)))


async def _compare(database_url: str, store: GraphStore, expected: list[bool]) -> None:
    # Twice over: more checks than one batch holds, in two statements.
    checks = CHECKS * 2
    reader = await PostgresReader.open(asyncpg_dsn(database_url), pool_size=2, timeout=30)
    try:
        for closure in ("kept", "not kept"):
            if closure == "not kept":
                _forget_closure(store)
            single = await _one_by_one(reader, checks)
            assert [r.found for r in single] == expected * 2, closure
            assert await _together(reader, checks) == single, closure
    finally:
        await reader.close()


@SETTINGS
@given(steps=steps)
def test_answers_together_are_the_single_answers(
    database_url: str, store: GraphStore, steps: list[tuple[str, dict[str, Any]]]
) -> None:
    _postgres_only(database_url)
    _clear(store)
    ref = ReferenceGraph()
    for action, raw in steps:
        step_both(store, ref, action, raw)
    expected = [ref.reach(node, VertexKey(kind, ns, name)) for node, kind, ns, name in CHECKS]
    asyncio.run(_compare(database_url, store, expected))


def test_a_batch_keeps_each_checks_answer_in_place(database_url: str, store: GraphStore) -> None:
    """Found, not found and cut by the depth bound, mixed in one statement, each where it was asked."""
    _postgres_only(database_url)
    store.apply([derive(pod("user", "ns", "n1", pvcs=("claim",))), chain(MAX_DEPTH + 2)])
    checks: list[Check] = [
        ("n1", "secret", "ns", "start"),  # the walk is cut by the bound: truncated, not a silent "no"
        ("n1", "pvc", "ns", "claim"),
        ("n2", "pvc", "ns", "claim"),
        ("n2", "secret", "ns", "start"),
        ("n1", "secret", "ns", "nope"),
    ]
    truncated, found, none = Reach(False, True), Reach(True), Reach(False)

    async def scenario() -> list[list[Reach]]:
        reader = await PostgresReader.open(asyncpg_dsn(database_url), pool_size=1, timeout=30)
        try:
            kept = await _together(reader, checks * 3)
            _forget_closure(store)
            return [kept, await _together(reader, checks * 3)]
        finally:
            await reader.close()

    for answers in asyncio.run(scenario()):
        assert answers == [truncated, found, none, truncated, none] * 3


# -- faults: a stalled batch, a failed batch ---------------------------------------------------------

WAITING = 20  # checks waiting on the database at once


async def _blocked_batch(admin: asyncpg.Connection, deadline: float) -> int:
    """The reader's backend once it waits on the lock, running one statement for several checks."""
    while True:
        row = await admin.fetchrow(
            "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'nodeauthz-reader' "
            "AND datname = current_database() AND wait_event_type = 'Lock'"
        )
        if row is not None:
            assert "WITH ORDINALITY" in row["query"], row["query"]  # the batch statement, not one check
            return int(row["pid"])
        assert time.monotonic() < deadline, "no reader backend ever waited on the lock"
        await asyncio.sleep(0.02)


async def _answers(authorizer: Authorizer, bodies: list[bytes]) -> list[dict[str, Any]]:
    results = await asyncio.gather(*(authorizer.answer(body, time.perf_counter()) for body in bodies))
    assert all(status == 200 for status, _ in results)
    return [orjson.loads(payload)["status"] for _, payload in results]


async def _stall_scenario(database_url: str, *, timeout: float, terminate: bool) -> dict[str, Any]:
    """WAITING reviews answered while another session locks the edges table; then one after it."""
    dsn = asyncpg_dsn(database_url)
    reader = await PostgresReader.open(dsn, pool_size=1, timeout=30)

    async def get_reader() -> PostgresReader:
        return reader

    authorizer = Authorizer(get_reader, gates=DEFAULT_GATES, timeout=timeout)
    bodies = [orjson.dumps(sample_review("n1", "shop", "tls")) for _ in range(WAITING)]
    admin, locker = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        before = await _answers(authorizer, bodies[:1])
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE edges IN ACCESS EXCLUSIVE MODE")
        try:
            answering = asyncio.ensure_future(_answers(authorizer, bodies))
            pid = await _blocked_batch(admin, time.monotonic() + timeout + 10)
            if terminate:  # what a failover or a server restart does to the connection
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            during = await answering
        finally:
            await lock.rollback()
        after = await _answers(authorizer, bodies[:1])  # the broken connection is replaced
    finally:
        await reader.close()
        await admin.close()
        await locker.close()
    return {"before": before, "during": during, "after": after}


@pytest.mark.parametrize("fault", ["stalled", "terminated"])
def test_a_batch_that_stalls_or_fails_answers_no_opinion_for_each_check(
    database_url: str, store: GraphStore, fault: str
) -> None:
    _postgres_only(database_url)
    store.apply([derive(pod("web", "shop", "n1", secrets=("tls",)))])
    # Stalled: each check's own deadline ends its wait. Terminated: the deadline is far; the failure ends it.
    timeout = 2.0 if fault == "stalled" else 30.0
    result = asyncio.run(_stall_scenario(database_url, timeout=timeout, terminate=fault == "terminated"))
    assert [s["allowed"] for s in result["before"]] == [True]
    assert len(result["during"]) == WAITING
    for status in result["during"]:
        assert status["allowed"] is False
        assert status["reason"].startswith(f"{FAILURE_PREFIX}failed: "), status
        assert ("no answer from the database within" in status["reason"]) == (fault == "stalled"), status
    assert [s["allowed"] for s in result["after"]] == [True]
