"""Checks read from a hot standby, verified fresh on their own connection (``app.graph.standby``).

A primary and a hot standby of the test's own (``pg_basebackup -R``, never the shared server);
the graph is written on the primary by a lease-holding store and read on the standby by a
``StandbyReader`` whose ``ReadReplica`` hears the primary's position from a real ``PrimarySampler``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from app.graph.database import make_engine, make_read_engine
from app.graph.derivation import derive
from app.graph.freshness import StaleRead
from app.graph.readers import open_reader
from app.graph.standby import FreshLookups, PrimarySampler, ReadReplica, StandbyReader
from app.graph.store import GraphStore
from app.ha.lease import LeaseManager
from app.k8s.kinds import VertexKey
from tests.builders import pod
from tests.pg_server import OwnServer, own_standby
from tests.standby_pair import DATABASE, caught_up, migrated_primary
from tests.tcp_proxy import TcpProxy
from tests.writers import TEST_LEASE_SECONDS, fenced, lease_holding_store

BOUND_S = 1.5
SLACK_S = 1.5  # a loaded 2-core machine: sampling, scheduling


@pytest.fixture(scope="module")
def primary() -> Iterator[OwnServer]:
    with migrated_primary() as server:
        yield server


@pytest.fixture(scope="module")
def standby(primary: OwnServer) -> Iterator[OwnServer]:
    with own_standby(primary) as server:
        caught_up(primary, server)
        yield server


@pytest.fixture(scope="module")
def store(primary: OwnServer) -> Iterator[GraphStore]:
    engine = make_engine(primary.url(DATABASE))
    yield lease_holding_store(engine)
    engine.dispose()


def standby_reader(primary: OwnServer, standby: OwnServer) -> AbstractAsyncContextManager[StandbyReader]:
    return standby_reader_of(primary.url(DATABASE), standby)


@asynccontextmanager
async def standby_reader_of(primary_url: str, standby: OwnServer) -> AsyncIterator[StandbyReader]:
    replica = ReadReplica(BOUND_S)
    sampler = asyncio.create_task(PrimarySampler(primary_url, replica).run())
    reader = await open_reader(standby.url(DATABASE), pool_size=2, replica=replica)
    assert isinstance(reader, StandbyReader)
    await until(heard(replica), 10)  # the sampler's first position
    try:
        yield reader
    finally:
        sampler.cancel()
        await reader.close()


def heard(replica: ReadReplica) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        replica.require_primary_heard()
        return True

    return check


async def until(check: Callable[[], Awaitable[Any]], timeout: float) -> tuple[float, Any]:
    """(seconds taken, result) once ``check`` returns something true; StaleRead counts as an answer."""
    started = time.monotonic()
    while True:
        try:
            result = await check()
        except StaleRead as exc:
            result = exc
        if result and not (isinstance(result, StaleRead) and "not heard from yet" in str(result)):
            return time.monotonic() - started, result
        assert time.monotonic() - started < timeout, f"no answer in {timeout}s (last {result!r})"
        await asyncio.sleep(0.05)


def test_checks_are_answered_by_the_standby_and_see_a_new_pod_within_the_bound(
    primary: OwnServer, standby: OwnServer, store: GraphStore
) -> None:
    async def scenario() -> tuple[Any, float]:
        async with standby_reader(primary, standby) as reader:
            position = await reader.position()
            store.apply([derive(pod("web", "shop", "n1", secrets=("web-tls",)))])
            took, _ = await until(lambda: found(reader, "n1", "web-tls"), BOUND_S + SLACK_S)
            return position, took

    position, took = asyncio.run(scenario())
    assert position.in_recovery  # the reader's own connection: a hot standby
    assert took < BOUND_S + SLACK_S
    # The reader's connections were on the standby, none on the primary (whose only nodeauthz
    # connection is the sampler's).
    names = "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'"
    assert primary.sql(names.format("nodeauthz-reader")) == 0


async def found(reader: StandbyReader, node: str, secret: str) -> bool:
    return (await reader.reach(node, "secret", "shop", secret)).found


async def found_after_turns(reader: StandbyReader, node: str, secret: str, turns: int = 3) -> bool:
    """The same, asked a few turns of the event loop later: after a check asked now has been sent."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return await found(reader, node, secret)


def test_a_paused_standby_is_refused_once_past_the_bound_never_a_stale_allow_after_it(
    primary: OwnServer, standby: OwnServer, store: GraphStore
) -> None:
    store.apply([derive(pod("paused", "shop", "n1", secrets=("paused-tls",)))])
    caught_up(primary, standby)
    lookups = FreshLookups(make_read_engine(standby.url(DATABASE), pool_size=1), ReadReplica(BOUND_S))

    async def scenario() -> tuple[list[tuple[float, object]], object, bool]:
        async with standby_reader(primary, standby) as reader:
            lookups.replica = reader._replica  # the same primary history, as in the webhook
            assert await found(reader, "n1", "paused-tls")
            standby.sql("SELECT pg_wal_replay_pause()")
            store.delete([VertexKey("pod", "shop", "paused")])
            deleted = time.monotonic()
            outcomes: list[tuple[float, object]] = []
            while time.monotonic() - deleted < BOUND_S + SLACK_S + 1:
                try:
                    outcome: object = await found(reader, "n1", "paused-tls")
                except StaleRead as exc:
                    outcome = exc
                outcomes.append((time.monotonic() - deleted, outcome))
                await asyncio.sleep(0.05)
            try:
                admission: object = await asyncio.to_thread(lookups.pod, "shop", "paused")
            except StaleRead as exc:
                admission = exc
            standby.sql("SELECT pg_wal_replay_resume()")
            _, after = await until(lambda: not_found(reader, "n1", "paused-tls"), 10)
            return outcomes, admission, after

    try:
        outcomes, admission, after = asyncio.run(scenario())
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")
        lookups.engine.dispose()
    stale_allows = [t for t, o in outcomes if o is True]
    assert not stale_allows or max(stale_allows) < BOUND_S  # a stale allow only within the bound
    last_t, last = outcomes[-1]
    assert isinstance(last, StaleRead) and "behind the primary (bound 1.5s)" in str(last), outcomes[-5:]
    assert isinstance(admission, StaleRead)  # NodeRestriction's look-ups are judged the same way
    assert after is True  # replay resumed: the deletion is seen, answers come again


async def not_found(reader: StandbyReader, node: str, secret: str) -> bool:
    try:
        return not await found(reader, node, secret)
    except StaleRead:
        return False  # not yet caught up


def test_a_restarted_standby_is_reconnected_to_by_itself(
    primary: OwnServer, standby: OwnServer, store: GraphStore
) -> None:
    store.apply([derive(pod("restart", "shop", "n2", secrets=("restart-tls",)))])

    async def scenario() -> float:
        async with standby_reader(primary, standby) as reader:
            await until(lambda: found(reader, "n2", "restart-tls"), 10)
            await asyncio.to_thread(standby.restart)  # every open connection is cut
            took, _ = await until(lambda: answered(reader, "n2", "restart-tls"), 20)
            return took

    assert asyncio.run(scenario()) < 20


async def answered(reader: StandbyReader, node: str, secret: str) -> bool:
    try:
        return await found(reader, node, secret)
    except Exception:  # noqa: BLE001 - a cut connection fails its check (the webhook: no-opinion)
        return False


def test_a_standby_promoted_away_from_the_primary_is_refused(primary: OwnServer, store: GraphStore) -> None:
    """Promoted while the writer still writes to the old primary: its graph no longer follows it."""
    store.apply([derive(pod("promo", "shop", "n1", secrets=("promo-tls",)))])
    with own_standby(primary) as promoted:
        caught_up(primary, promoted)

        async def scenario() -> tuple[bool, object]:
            async with standby_reader(primary, promoted) as reader:
                before = await found(reader, "n1", "promo-tls")
                assert promoted.sql("SELECT pg_promote(true, 30)")
                store.delete([VertexKey("pod", "shop", "promo")])  # only on the old primary
                _, refused = await until(lambda: stale(reader), BOUND_S + SLACK_S)
                return before, refused

        before, refused = asyncio.run(scenario())
    assert before is True
    assert isinstance(refused, StaleRead) and "it was promoted and no longer follows the primary" in str(
        refused
    )


async def stale(reader: StandbyReader) -> object:
    try:
        await found(reader, "n1", "promo-tls")
    except StaleRead as exc:
        return exc
    return None


def test_a_failover_to_the_standby_keeps_checks_answering() -> None:
    """The primary dies, the standby is promoted and the primary's service name moves to it: checks
    keep being answered from the same connections, and the new primary's writes are seen."""
    with migrated_primary() as old, own_standby(old) as new, TcpProxy(old.port) as service:
        caught_up(old, new)
        service_url = f"postgresql+psycopg://postgres@127.0.0.1:{service.port}/{DATABASE}"
        engine = make_engine(service_url)
        fence = LeaseManager(engine, holder="test", duration=TEST_LEASE_SECONDS).try_acquire()
        assert fence is not None
        store = fenced(engine, fence)
        store.apply([derive(pod("fo", "shop", "n1", secrets=("fo-tls",)))])

        async def scenario() -> tuple[float, float]:
            async with standby_reader_of(service_url, new) as reader:
                await until(lambda: found(reader, "n1", "fo-tls"), 10)
                await asyncio.to_thread(old._stop_now)
                assert await asyncio.to_thread(new.sql, "SELECT pg_promote(true, 30)")
                service.retarget(new.port)
                failed_over = time.monotonic()
                await until(lambda: found(reader, "n1", "fo-tls"), BOUND_S + SLACK_S)
                answering = time.monotonic() - failed_over
                await asyncio.to_thread(store.delete, [VertexKey("pod", "shop", "fo")])  # on the new primary
                took, _ = await until(lambda: not_found(reader, "n1", "fo-tls"), BOUND_S + SLACK_S)
                return answering, took

        try:
            answering, took = asyncio.run(scenario())
        finally:
            engine.dispose()
    assert answering < BOUND_S + SLACK_S and took < BOUND_S + SLACK_S


def test_two_standbys_behind_one_name_are_judged_each_on_its_own(
    primary: OwnServer, store: GraphStore
) -> None:
    """One standby's replay paused, the other's not, both behind one name: answers come from the
    fresh one and are refused on the lagging one's connection, never a stale allow past the bound.
    A freshness figure shared by the two connections would let the lagging one answer."""
    store.apply([derive(pod("pair", "shop", "n1", secrets=("pair-tls",)))])
    with (
        own_standby(primary) as lagging,
        own_standby(primary) as fresh,
        TcpProxy(lagging.port, fresh.port) as name,
    ):
        caught_up(primary, lagging)
        caught_up(primary, fresh)

        async def scenario() -> list[tuple[float, object]]:
            replica = ReadReplica(BOUND_S)
            sampler = asyncio.create_task(PrimarySampler(primary.url(DATABASE), replica).run())
            url = f"postgresql+psycopg://postgres@127.0.0.1:{name.port}/{DATABASE}"
            reader = await open_reader(url, pool_size=2, replica=replica)  # the first connection: lagging
            assert isinstance(reader, StandbyReader)
            try:
                await until(heard(replica), 10)
                lagging.sql("SELECT pg_wal_replay_pause()")
                await asyncio.to_thread(store.delete, [VertexKey("pod", "shop", "pair")])
                deleted = time.monotonic()
                outcomes: list[tuple[float, object]] = []
                while time.monotonic() - deleted < BOUND_S + SLACK_S + 1:
                    # Two at once, the second asked while the first's statement is in flight (asked
                    # together, they would share one): the pool's second connection goes to the other standby.
                    for outcome in await asyncio.gather(
                        found(reader, "n1", "pair-tls"),
                        found_after_turns(reader, "n1", "pair-tls"),
                        return_exceptions=True,
                    ):
                        outcomes.append((time.monotonic() - deleted, outcome))
                    await asyncio.sleep(0.05)
                return outcomes
            finally:
                sampler.cancel()
                await reader.close()
                lagging.sql("SELECT pg_wal_replay_resume()")

        outcomes = asyncio.run(scenario())
    late = [o for t, o in outcomes if t > BOUND_S + 0.5]
    assert True not in late  # never a stale allow past the bound
    assert False in late  # the fresh standby answers (the deletion seen)
    assert any(
        isinstance(o, StaleRead) and "behind the primary" in str(o) for o in late
    )  # the lagging one refuses
