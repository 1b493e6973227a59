"""The writer lease: acquire/renew/release/expiry, competing replicas, fencing, and the leader loop."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from app.graph.derivation import DerivedObject, derive
from app.graph.fence import Fence, LeaseLost, check_fence_locked
from app.graph.schema import objects, writer_lease
from app.graph.store import GraphStore
from app.ha.leader_loop import LeaderLoop
from app.ha.lease import LeaseManager
from app.ha.lease_record import unique_holder
from tests.clock import FakeClock
from tests.writers import fenced

DURATION = 10.0


_OPEN: list[LeaseManager] = []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _close_managers() -> Iterator[None]:
    """Each manager holds liveness locks on a connection or descriptor of its own: give them back."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def manager(engine: Engine, holder: str, clock: Callable[[], float] | None, **kw: Any) -> LeaseManager:
    """A manager whose takeovers are timed by ``clock`` too (by the real monotonic clock without one)."""
    kw.setdefault("monotonic", clock or time.monotonic)
    m = LeaseManager(engine, holder=holder, duration=kw.pop("duration", DURATION), clock=clock, **kw)
    _OPEN.append(m)
    return m


def take_over_silent(candidate: LeaseManager, clock: FakeClock) -> Fence | None:
    """``candidate`` watches the lease go unrenewed for a whole duration, then tries to take it."""
    assert candidate.try_acquire() is None  # its holder is alive: watch it first
    clock.advance(candidate.duration)
    return candidate.try_acquire()


def pod(name: str, node: str = "node-1") -> DerivedObject:
    return derive(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"},
            "spec": {"nodeName": node},
        }
    )


def assert_refused(store: GraphStore, items: list[DerivedObject], fence: Fence) -> None:
    with pytest.raises(LeaseLost):
        fenced(store.engine, fence).apply(items)


def stored_pods(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(objects.c.name).where(objects.c.kind == "pod")).scalars())


# --- one manager at a time -------------------------------------------------------------------------


def test_first_acquire_gets_epoch_one_and_a_peer_is_refused(engine: Engine, clock: FakeClock) -> None:
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    assert a.current() is None
    assert a.try_acquire() == Fence("graph-writer", "a", 1)
    assert b.try_acquire() is None
    info = b.current()
    assert info is not None and (info.holder, info.epoch, info.expired) == ("a", 1, False)
    assert info.remaining == pytest.approx(DURATION)


def test_holder_acquiring_again_keeps_its_epoch_and_extends_expiry(engine: Engine, clock: FakeClock) -> None:
    a = manager(engine, "a", clock)
    first = a.try_acquire()
    clock.advance(4)
    assert a.try_acquire() == first
    info = a.current()
    assert info is not None
    assert info.remaining == pytest.approx(DURATION)
    assert info.expires_at - info.acquired_at == timedelta(seconds=DURATION + 4)  # acquired_at kept


def test_renew_extends_the_lease_until_someone_takes_it_over(engine: Engine, clock: FakeClock) -> None:
    a = manager(engine, "a", clock)
    fence = a.try_acquire()
    assert fence is not None
    clock.advance(DURATION - 1)
    assert a.renew(fence)
    clock.advance(DURATION - 1)  # would have expired without the renewal
    assert a.renew(fence)
    assert not a.renew(Fence(fence.lease, fence.holder, fence.epoch + 1))
    assert not a.renew(Fence(fence.lease, "someone-else", fence.epoch))
    clock.advance(3 * DURATION)  # past expiry, but nobody has taken over: the epoch decides, not a clock
    assert a.renew(fence)


def test_a_silent_lease_is_taken_over_after_a_candidate_watched_it_for_a_duration(
    engine: Engine, clock: FakeClock
) -> None:
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    fa = a.try_acquire()
    assert fa is not None
    assert b.try_acquire() is None  # a is alive (holds its liveness lock): b starts watching
    clock.advance(DURATION - 0.001)
    assert b.try_acquire() is None  # not yet
    clock.advance(0.001)
    fb = b.try_acquire()
    assert fb == Fence("graph-writer", "b", 2)
    assert not a.renew(fa)
    assert a.try_acquire() is None
    info = a.current()
    assert info is not None and (info.holder, info.epoch) == ("b", 2)


def test_a_renewal_resets_the_watch(engine: Engine, clock: FakeClock) -> None:
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    fa = a.try_acquire()
    assert fa is not None
    assert b.try_acquire() is None
    clock.advance(DURATION - 1)
    assert a.renew(fa)
    assert b.try_acquire() is None  # a new row: b's watch starts again
    clock.advance(DURATION - 1)
    assert b.try_acquire() is None
    clock.advance(1)
    assert b.try_acquire() == Fence("graph-writer", "b", 2)


def test_a_holder_that_stepped_down_starts_a_new_term(engine: Engine, clock: FakeClock) -> None:
    a = manager(engine, "a", clock)
    fa = a.try_acquire()
    assert fa == Fence("graph-writer", "a", 1)
    a.step_down(fa)  # deposed after failed renewals: its writer stopped
    # A new term: writes still in flight under epoch 1 are fenced out.
    assert a.try_acquire() == Fence("graph-writer", "a", 2)


def test_release_lets_a_peer_take_over_at_once(engine: Engine, clock: FakeClock) -> None:
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    fa = a.try_acquire()
    assert fa is not None
    a.release(Fence(fa.lease, fa.holder, fa.epoch + 5))  # not ours: ignored
    assert b.try_acquire() is None
    a.release(fa)
    assert not a.renew(fa)
    assert b.try_acquire() == Fence("graph-writer", "b", 2)
    a.release(fa)  # stale fence: must not expire b's lease
    assert a.try_acquire() is None


def test_leases_with_different_names_are_independent(engine: Engine, clock: FakeClock) -> None:
    a = manager(engine, "a", clock, name="one")
    b = manager(engine, "b", clock, name="two")
    assert a.try_acquire() == Fence("one", "a", 1)
    assert b.try_acquire() == Fence("two", "b", 1)


def test_default_clock_expires_leases_in_real_time(engine: Engine) -> None:
    a, b = manager(engine, "a", None, duration=0.3), manager(engine, "b", None, duration=0.3)
    assert a.try_acquire() is not None
    assert b.try_acquire() is None
    info = b.current()
    assert info is not None and 0 < info.remaining <= 0.3
    time.sleep(0.4)
    assert b.try_acquire() == Fence("graph-writer", "b", 2)


def test_postgresql_judges_expiry_by_the_database_clock(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite replicas share one host and so one clock")
    a = manager(engine, "a", None)
    assert a.try_acquire() is not None
    with engine.connect() as conn:
        row = conn.execute(
            select(writer_lease.c.expires_at, text("statement_timestamp()")).select_from(writer_lease)
        ).one()
    assert abs((row[0] - row[1]).total_seconds() - DURATION) < 1


def test_unique_holder_ids_differ() -> None:
    assert unique_holder("pod") != unique_holder("pod")
    assert unique_holder("pod").startswith("pod-")


# --- competing managers ----------------------------------------------------------------------------


def race(managers: list[LeaseManager]) -> list[Fence | None]:
    """Every manager calls try_acquire at the same moment, each from its own thread."""
    barrier = threading.Barrier(len(managers))

    def attempt(m: LeaseManager) -> Fence | None:
        barrier.wait()
        return m.try_acquire()

    with ThreadPoolExecutor(len(managers)) as pool:
        return list(pool.map(attempt, managers))


def test_replicas_racing_for_the_first_row_elect_exactly_one(engine: Engine, clock: FakeClock) -> None:
    results = race([manager(engine, f"r{i}", clock) for i in range(8)])
    winners = [f for f in results if f is not None]
    assert len(winners) == 1 and winners[0].epoch == 1


def test_replicas_racing_over_rounds_hold_one_at_a_time(engine: Engine, clock: FakeClock) -> None:
    managers = {f"r{i}": manager(engine, f"r{i}", clock) for i in range(6)}
    winners = [f for f in race(list(managers.values())) if f is not None]
    assert len(winners) == 1
    leader = winners[0]
    for round_ in range(4):
        clock.advance(DURATION / 2)
        # The lease is current: only its holder gets it, with the same epoch (a renewal).
        assert [f for f in race(list(managers.values())) if f is not None] == [leader], f"round {round_}"
        # The leader dies (its liveness lock goes with it): the others race for the next epoch.
        managers.pop(leader.holder).close()
        winners = []
        for _ in range(100):  # a PostgreSQL backend drops its locks moments after its client closes
            winners = [f for f in race(list(managers.values())) if f is not None]
            if winners:
                break
            time.sleep(0.01)
        assert len(winners) == 1, f"round {round_}: {winners}"
        assert winners[0].epoch == leader.epoch + 1
        leader = winners[0]


def test_competing_loops_never_share_an_epoch(engine: Engine) -> None:
    """Real time and sleeps: leaders stall past expiry, peers take over; every epoch has one holder."""
    seen: dict[int, set[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def replica(index: int) -> None:
        m = manager(engine, f"r{index}", None, duration=0.2)
        fence: Fence | None = None
        rounds = 0
        while not stop.is_set():
            fence = m.try_acquire() if fence is None or not m.renew(fence) else fence
            if fence is not None:
                with lock:
                    seen.setdefault(fence.epoch, set()).add(m.holder)
                try:
                    fenced(engine, fence).apply([pod(f"p{index}-{rounds}")])
                except LeaseLost:
                    fence = None
                rounds += 1
                if rounds % 3 == 0:
                    time.sleep(0.25)  # a stall longer than the lease: a peer takes over
            time.sleep(0.02)

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(seen) >= 3, seen  # takeovers happened
    assert all(len(holders) == 1 for holders in seen.values()), seen
    assert sorted(seen) == list(range(1, max(seen) + 1))  # epochs are never skipped or reused


# --- fencing ---------------------------------------------------------------------------------------


def test_deposed_writer_cannot_write(engine: Engine, clock: FakeClock) -> None:
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    fa = a.try_acquire()
    assert fa is not None and fa.epoch == 1
    store_a = fenced(engine, fa)
    store_a.apply([pod("before")])
    fb = take_over_silent(b, clock)
    assert fb is not None and fb.epoch == 2
    assert_refused(store_a, [pod("stale")], fa)
    assert stored_pods(engine) == {"before"}
    assert fenced(engine, fb).apply([pod("fresh")]).written == 1
    assert stored_pods(engine) == {"before", "fresh"}


def test_refused_write_returns_its_connection(engine: Engine, clock: FakeClock) -> None:
    """A refused write must end its transaction at once: on SQLite it holds the write lock
    (every other writer, the new leader included, fails with "database is locked"); on
    PostgreSQL it sits idle in transaction holding a lock on writer_lease."""
    stale = Fence("graph-writer", "a", 1)  # no lease row at all
    try:
        with pytest.raises(LeaseLost):
            fenced(engine, stale).apply([pod("stale")])
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        gc.collect()


def lock_waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_takeover_waits_for_the_deposed_writers_transaction(engine: Engine, clock: FakeClock) -> None:
    """A write that passed its fence check commits before a takeover can.

    PostgreSQL: the fence check takes the lease row FOR KEY SHARE, so B's FOR
    UPDATE waits on it (seen in pg_stat_activity); then B's swap succeeds and
    A's next write is refused. SQLite: B's BEGIN IMMEDIATE waits for A's write
    transaction; that cannot be observed, so the test checks B is still waiting
    half a second later (the busy timeout is 10 s). There A's write renewed the
    lease, so B's swap finds the row changed and B stays a candidate.
    """
    a, b = manager(engine, "a", clock), manager(engine, "b", clock)
    fa = a.try_acquire()
    assert fa is not None
    store_a = fenced(engine, fa)
    assert b.try_acquire() is None  # b starts watching the row
    clock.advance(1)  # A writes a second later
    inside, proceed = threading.Event(), threading.Event()
    original = store_a._apply_locked

    def paused_apply(conn: Any, items: Any) -> Any:
        inside.set()
        assert proceed.wait(10)
        return original(conn, items)

    store_a._apply_locked = paused_apply  # type: ignore[method-assign]
    with ThreadPoolExecutor(2) as pool:
        write = pool.submit(store_a.apply, [pod("in-flight")])
        assert inside.wait(10)  # A's transaction is open and past its fence check
        clock.advance(DURATION)  # b has watched the row (as committed) unchanged for a whole duration
        takeover = pool.submit(b.try_acquire)
        if engine.dialect.name == "postgresql":
            deadline = time.monotonic() + 10
            while lock_waiters(engine) < 1:
                assert time.monotonic() < deadline, "B never waited for the lease row lock"
                time.sleep(0.01)
        else:
            time.sleep(0.5)
        assert not takeover.done()
        proceed.set()
        assert write.result(10).written == 1
        taken = takeover.result(10)
    store_a._apply_locked = original  # type: ignore[method-assign]
    assert stored_pods(engine) == {"in-flight"}
    if engine.dialect.name == "sqlite":
        assert taken is None  # a write is a renewal there
        return
    assert taken == Fence("graph-writer", "b", 2)
    assert_refused(store_a, [pod("after")], fa)
    assert stored_pods(engine) == {"in-flight"}


# --- the leader loop -------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.elected = threading.Event()
        self.deposed = threading.Event()

    def on_elected(self, fence: Fence) -> None:
        self.events.append(fence)
        self.elected.set()

    def on_deposed(self) -> None:
        self.events.append("deposed")
        self.deposed.set()

    def callbacks(self) -> dict[str, Any]:
        return {"on_elected": self.on_elected, "on_deposed": self.on_deposed}


def test_loop_elects_renews_and_reports_being_deposed(engine: Engine, clock: FakeClock) -> None:
    rec = Recorder()
    loop = LeaderLoop(manager(engine, "a", clock), on_elected=rec.on_elected, on_deposed=rec.on_deposed)
    assert loop.interval == pytest.approx(DURATION / 3)
    loop.tick()
    assert rec.events == [Fence("graph-writer", "a", 1)] and loop.fence == rec.events[0]
    clock.advance(DURATION - 1)
    loop.tick()  # renews
    clock.advance(DURATION - 1)
    loop.tick()
    assert rec.events == [Fence("graph-writer", "a", 1)]
    assert take_over_silent(manager(engine, "b", clock), clock) is not None
    loop.tick()
    assert rec.events[1:] == ["deposed"] and loop.fence is None
    loop.tick()  # b holds a current lease: nothing happens
    assert len(rec.events) == 2


def test_loop_keeps_leading_through_renewal_errors_until_the_lease_must_have_expired(
    engine: Engine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    m = manager(engine, "a", clock, duration=0.3)
    loop = LeaderLoop(m, on_elected=rec.on_elected, on_deposed=rec.on_deposed)
    loop.tick()
    assert loop.fence is not None

    def broken(fence: Fence) -> bool:
        raise ConnectionError("database went away")

    monkeypatch.setattr(m, "renew", broken)
    loop.tick()
    assert loop.fence is not None and rec.events[1:] == []
    time.sleep(0.35)
    loop.tick()
    assert loop.fence is None and rec.events[1:] == ["deposed"]


def test_loop_gives_the_lease_back_when_on_elected_fails(engine: Engine, clock: FakeClock) -> None:
    def refuse(fence: Fence) -> None:
        raise RuntimeError("cannot start informers")

    loop = LeaderLoop(manager(engine, "a", clock), on_elected=refuse, on_deposed=lambda: None)
    loop.tick()
    assert loop.fence is None
    assert manager(engine, "b", clock).try_acquire() == Fence("graph-writer", "b", 2)


def test_loop_thread_stops_promptly_and_releases_the_lease(engine: Engine, clock: FakeClock) -> None:
    rec = Recorder()
    loop = LeaderLoop(
        manager(engine, "a", clock), on_elected=rec.on_elected, on_deposed=rec.on_deposed, interval=60
    )
    loop.start()
    assert rec.elected.wait(10)
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 5
    assert rec.deposed.is_set() and loop.fence is None
    # Released: a peer takes over without waiting for expiry.
    assert manager(engine, "b", clock).try_acquire() == Fence("graph-writer", "b", 2)


def test_loop_thread_takes_over_when_the_leader_stops(engine: Engine) -> None:
    first, second = Recorder(), Recorder()
    loop_a = LeaderLoop(
        manager(engine, "a", None, duration=0.3), on_elected=first.on_elected, on_deposed=first.on_deposed
    )
    loop_a.start()
    assert first.elected.wait(10)
    loop_b = LeaderLoop(
        manager(engine, "b", None, duration=0.3), on_elected=second.on_elected, on_deposed=second.on_deposed
    )
    loop_b.start()
    time.sleep(0.5)  # a renews every 0.1 s: b must stay a follower
    assert not second.elected.is_set()
    loop_a.stop()
    assert second.elected.wait(10)
    assert second.events == [Fence("graph-writer", "b", 2)]
    loop_b.stop()


# --- faults: a skewed clock, a busy writer, a dead one, a paused one --------------------------------


def test_a_candidate_whose_clock_runs_30s_fast_cannot_take_a_healthy_lease(engine: Engine) -> None:
    """Takeovers are timed by the candidate's own monotonic clock against the row it sees change."""
    watch = FakeClock(0.0)
    a = manager(engine, "a", None)
    b = manager(engine, "b", lambda: time.time() + 30, monotonic=watch)
    fa = a.try_acquire()
    assert fa is not None
    for _ in range(6):  # two lease durations of a healthy holder renewing every duration / 3
        assert b.try_acquire() is None
        watch.advance(DURATION / 3)
        time.sleep(0.002)  # renewed_at must move on
        assert a.renew(fa)
    # a stops renewing (alive, so its liveness lock stays held): b takes over after watching a duration.
    assert b.try_acquire() is None
    watch.advance(DURATION - 0.001)
    assert b.try_acquire() is None
    watch.advance(0.001)
    assert b.try_acquire() == Fence("graph-writer", "b", 2)
    assert not a.renew(fa)


def test_a_busy_writer_keeps_its_lease(engine: Engine) -> None:
    """A fenced write transaction open for longer than the lease neither blocks renewals nor invites a takeover.

    PostgreSQL: the holder renews while the transaction runs (the fence check takes
    FOR KEY SHARE, which a renewal does not wait for). SQLite: renewals queue on the
    database lock, but the write renewed the lease itself, so the candidate's swap
    finds the row changed.
    """
    duration, hold_s = 1.0, 2.5
    first, second = Recorder(), Recorder()
    loop_a = LeaderLoop(manager(engine, "a", None, duration=duration), **first.callbacks())
    loop_a.start()
    assert first.elected.wait(10)
    loop_b = LeaderLoop(manager(engine, "b", None, duration=duration), **second.callbacks())
    loop_b.start()
    fence = first.events[0]
    renewed: list[Any] = []
    try:
        with engine.begin() as conn:
            check_fence_locked(conn, fence)
            fenced(engine, fence)._apply_locked(conn, [pod("slow")])
            started = time.monotonic()
            if engine.dialect.name == "postgresql":
                with ThreadPoolExecutor(1) as pool:
                    watcher = pool.submit(renewals_during, engine, hold_s)
                    conn.execute(text("SELECT pg_sleep(:s)"), {"s": hold_s})  # one long statement
                    renewed = watcher.result(10)
            else:
                time.sleep(hold_s)  # holding the database's write lock
            assert time.monotonic() - started > 2 * duration
        time.sleep(duration)  # give b every chance to (wrongly) take over now the write has committed
        assert not second.elected.is_set(), second.events
        assert loop_a.fence == fence and first.events == [fence]
        if engine.dialect.name == "postgresql":
            assert len(set(renewed)) >= 3, renewed  # renewals went on during the transaction
        assert stored_pods(engine) == {"slow"}
    finally:
        loop_b.stop()
        loop_a.stop()


def renewals_during(engine: Engine, seconds: float) -> list[Any]:
    seen = []
    deadline = time.monotonic() + seconds * 0.9
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            seen.append(conn.execute(select(writer_lease.c.renewed_at)).scalar_one())
        time.sleep(0.1)
    return seen


class Holder:
    """``tests.ha.lease_holder`` in a process of its own."""

    def __init__(self, database_url: str, duration: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ha.lease_holder", database_url, "a", str(duration)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def line(self) -> str:
        return self.stdout.readline().strip()

    def write(self, name: str) -> None:
        self.stdin.write(f"write {name}\n")
        self.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def test_a_dead_holder_is_replaced_at_once(database_url: str, engine: Engine) -> None:
    """SIGKILL: the server or the kernel drops the holder's liveness lock; no clock needs to move."""
    holder = Holder(database_url, duration=60)
    try:
        assert holder.line() == "elected 1"
        frozen = FakeClock(time.time())
        b = manager(engine, "b", frozen, monotonic=FakeClock(0.0), duration=60)
        assert b.try_acquire() is None  # alive
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(10)
        deadline = time.monotonic() + 10  # the server notices the closed connection within moments
        while (fence := b.try_acquire()) is None:
            assert time.monotonic() < deadline, "the dead holder's lease was not taken over"
            time.sleep(0.05)
        assert fence == Fence("graph-writer", "b", 2)
    finally:
        holder.close()


def test_a_paused_holder_is_replaced_after_a_duration_and_its_stale_writes_refused(
    database_url: str, engine: Engine
) -> None:
    """SIGSTOP keeps the liveness lock held, so the takeover waits for a duration of silence."""
    duration = 1.5
    holder = Holder(database_url, duration=duration)
    try:
        assert holder.line() == "elected 1"
        holder.write("before")
        assert holder.line() == "wrote before"
        b = manager(engine, "b", None, duration=duration)
        holder.proc.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        deadline = paused + 20 * duration
        while (fb := b.try_acquire()) is None:
            assert time.monotonic() < deadline, "the paused holder's lease was never taken over"
            time.sleep(0.05)
        # Its last renewal was at most duration / 3 before the pause; b must have watched a duration.
        assert time.monotonic() - paused >= duration * 2 / 3
        assert fb == Fence("graph-writer", "b", 2)
        fenced(engine, fb).apply([pod("fresh")])
        holder.write("stale")  # read as soon as it runs again
        holder.proc.send_signal(signal.SIGCONT)
        assert holder.line() == "refused stale"
        assert stored_pods(engine) == {"before", "fresh"}
        info = b.current()
        assert info is not None and (info.holder, info.epoch) == ("b", 2)
    finally:
        holder.proc.send_signal(signal.SIGCONT)
        holder.close()
