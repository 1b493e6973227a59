"""Which replica writes the graph: a lease row in ``writer_lease``, fenced by ``epoch``.

Every operation is one short transaction whose conditional UPDATE is the
arbiter, so it is correct under concurrency on both databases:

- SQLite: ``BEGIN IMMEDIATE`` serialises all writers, so each transaction sees
  the latest row and nothing interleaves.
- PostgreSQL (READ COMMITTED): an UPDATE whose WHERE matches waits for the row
  lock, then re-checks the WHERE against the committed row (so of two replicas
  taking over an expired lease, the second finds it taken and matches nothing).
  The first row is created by ``INSERT ... ON CONFLICT DO NOTHING``: of two
  replicas inserting at once, one inserts and the other waits on the unique
  index and then does nothing.

Whose clock: on PostgreSQL, the database's (``statement_timestamp()``), because
replicas on different hosts have skewed clocks and the database is the one
clock they all share; a statement that waited for the row lock judges expiry
as of when it started, which only makes takeovers later and leases shorter,
never the reverse. A SQLite file can only be shared by processes on one host
(WAL needs shared memory), so there the host clock is the shared clock.
Either way clocks only decide *when* a takeover happens: safety comes from the
epoch, which every fenced write re-checks in its own transaction
(``GraphStore._check_fence_locked``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Interval, and_, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from app.graph.schema import writer_lease
from app.graph.store import Fence

__all__ = ["DEFAULT_LEASE", "Clock", "LeaderLoop", "LeaseInfo", "LeaseManager", "read_lease", "unique_holder"]

DEFAULT_LEASE = "graph-writer"
log = logging.getLogger(__name__)

Clock = Callable[[], float]  # POSIX seconds, like time.time


def unique_holder(prefix: str | None = None) -> str:
    """A holder id unique to this process: two processes sharing one id would share one fence."""
    base = prefix or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseInfo:
    """The lease row as read at ``observed_at`` (the database's clock on PostgreSQL)."""

    holder: str
    epoch: int
    expires_at: datetime
    renewed_at: datetime
    acquired_at: datetime
    observed_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.observed_at

    @property
    def remaining(self) -> float:
        """Seconds until expiry (negative: expired that long ago)."""
        return (self.expires_at - self.observed_at).total_seconds()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clock_exprs(
    conn: Connection, clock: Clock | None, duration: float = 0.0
) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
    """(now, now + duration) as SQL: the database's clock on PostgreSQL unless a clock is injected."""
    if clock is None and conn.dialect.name == "postgresql":
        now_sql = func.statement_timestamp(type_=DateTime(timezone=True))
        return now_sql, now_sql + literal(timedelta(seconds=duration), Interval())
    # One host's clock (or the injected one); SQLite has no arithmetic on stored datetimes, so add here.
    now = datetime.fromtimestamp(clock() if clock is not None else time.time(), UTC)
    stamp = DateTime(timezone=True)
    return literal(now, stamp), literal(now + timedelta(seconds=duration), stamp)


def read_lease(
    conn: Connection, name: str = DEFAULT_LEASE, *, clock: Clock | None = None
) -> LeaseInfo | None:
    """The lease row, judged by the same clock the lease is written with (one PK lookup)."""
    now, _ = _clock_exprs(conn, clock)
    row = conn.execute(
        select(
            writer_lease.c.holder,
            writer_lease.c.epoch,
            writer_lease.c.expires_at,
            writer_lease.c.renewed_at,
            writer_lease.c.acquired_at,
            now.label("observed_at"),
        ).where(writer_lease.c.name == name)
    ).first()
    if row is None:
        return None
    return LeaseInfo(
        holder=row.holder,
        epoch=row.epoch,
        expires_at=_utc(row.expires_at),
        renewed_at=_utc(row.renewed_at),
        acquired_at=_utc(row.acquired_at),
        observed_at=_utc(row.observed_at),
    )


class LeaseManager:
    """Acquire, renew and release one named lease for one holder. Stateless; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = DEFAULT_LEASE,
        holder: str,
        duration: float = 15.0,
        clock: Clock | None = None,
    ) -> None:
        if duration <= 0:
            raise ValueError("lease duration must be positive")
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}")
        self.engine = engine
        self.name = name
        self.holder = holder
        self.duration = duration
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def _fence(self, epoch: int) -> Fence:
        return Fence(lease=self.name, holder=self.holder, epoch=epoch)

    def try_acquire(self) -> Fence | None:
        """Take the lease if free or expired (new epoch); if ours and current, renew it (same epoch)."""
        t = writer_lease.c
        with self.engine.begin() as conn:  # SQLite: the clock is read after BEGIN IMMEDIATE got the lock
            now, expires = _clock_exprs(conn, self.clock, self.duration)
            ours_current = and_(t.holder == self.holder, t.expires_at > now)
            # SET expressions read the row as it was before this UPDATE.
            taken = conn.execute(
                update(writer_lease)
                .where(t.name == self.name, or_(t.holder == self.holder, t.expires_at <= now))
                .values(
                    holder=self.holder,
                    epoch=case((ours_current, t.epoch), else_=t.epoch + 1),
                    acquired_at=case((ours_current, t.acquired_at), else_=now),
                    renewed_at=now,
                    expires_at=expires,
                )
                .returning(t.epoch)
            ).first()
            if taken is not None:
                return self._fence(taken.epoch)
            created = conn.execute(
                self._insert(writer_lease)
                .values(
                    name=self.name, holder=self.holder, epoch=1,
                    acquired_at=now, renewed_at=now, expires_at=expires,
                )
                .on_conflict_do_nothing(index_elements=[t.name])
                .returning(t.epoch)
            ).first()
            return self._fence(created.epoch) if created is not None else None

    def renew(self, fence: Fence) -> bool:
        """Extend the lease if this fence still holds it and it has not expired. False: stop writing."""
        t = writer_lease.c
        with self.engine.begin() as conn:
            now, expires = _clock_exprs(conn, self.clock, self.duration)
            result = conn.execute(
                update(writer_lease)
                .where(*self._matches(fence), t.expires_at > now)
                .values(renewed_at=now, expires_at=expires)
            )
            return result.rowcount == 1

    def release(self, fence: Fence) -> None:
        """Expire the lease now, if this fence still holds it, so a peer takes over at its next try."""
        t = writer_lease.c
        with self.engine.begin() as conn:
            now, _ = _clock_exprs(conn, self.clock)
            conn.execute(
                update(writer_lease).where(*self._matches(fence), t.expires_at > now).values(expires_at=now)
            )

    def current(self) -> LeaseInfo | None:
        with self.engine.connect() as conn:
            return read_lease(conn, self.name, clock=self.clock)

    def _matches(self, fence: Fence) -> tuple[ColumnElement[bool], ...]:
        t = writer_lease.c
        return (t.name == fence.lease, t.holder == fence.holder, t.epoch == fence.epoch)


class LeaderLoop:
    """A thread that keeps trying to become the writer and keeps the lease while it is.

    Every ``duration / 3`` it tries to acquire (when not leader) or renews (when
    leader). ``on_elected(fence)`` runs when it wins; ``on_deposed()`` when a
    renewal is refused, when renewals have failed with errors for a whole lease
    duration (the lease has surely expired by then), and on stop. On stop it
    calls ``on_deposed`` first, so writing has stopped, then releases the lease.
    Callbacks run on the loop's thread and should return quickly.
    """

    def __init__(
        self,
        manager: LeaseManager,
        *,
        on_elected: Callable[[Fence], Any],
        on_deposed: Callable[[], Any],
        interval: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.manager = manager
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval = interval if interval is not None else manager.duration / 3
        self.stop_event = stop_event or threading.Event()
        self._fence: Fence | None = None
        self._last_renewed = 0.0
        self._thread: threading.Thread | None = None

    @property
    def fence(self) -> Fence | None:
        """The fence while this replica is the writer, else None."""
        return self._fence

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("leader loop already started")
        self._thread = threading.Thread(target=self.run, name=f"leader-{self.manager.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Signal the loop to stop and wait for it to release the lease."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The loop body; ``start`` runs it on a daemon thread."""
        try:
            while not self.stop_event.is_set():
                self.tick()
                self.stop_event.wait(self.interval)
        finally:
            fence = self._fence
            if fence is not None:
                self._depose()
                try:
                    self.manager.release(fence)
                except Exception:  # noqa: BLE001 - shutting down; the lease will expire on its own
                    log.exception("releasing lease %r failed", self.manager.name)

    def tick(self) -> None:
        """One step: acquire when not leader, renew when leader."""
        fence = self._fence
        if fence is None:
            try:
                fence = self.manager.try_acquire()
            except Exception:  # noqa: BLE001 - database trouble: try again next tick
                log.exception("acquiring lease %r failed", self.manager.name)
                return
            if fence is None:
                return
            self._fence = fence
            self._last_renewed = time.monotonic()
            log.info("elected writer: lease %r epoch %d", fence.lease, fence.epoch)
            try:
                self.on_elected(fence)
            except Exception:  # noqa: BLE001 - a writer that cannot start must not keep the lease
                log.exception("on_elected failed; giving up the lease")
                self._fence = None
                self._release_quietly(fence)
            return
        try:
            renewed = self.manager.renew(fence)
        except Exception:  # noqa: BLE001 - keep leading until the lease must have expired
            log.exception("renewing lease %r failed", self.manager.name)
            if time.monotonic() - self._last_renewed < self.manager.duration:
                return
            renewed = False
        if renewed:
            self._last_renewed = time.monotonic()
            return
        log.warning("deposed: lease %r epoch %d is no longer ours", fence.lease, fence.epoch)
        self._depose()

    def _depose(self) -> None:
        self._fence = None
        try:
            self.on_deposed()
        except Exception:  # noqa: BLE001 - the loop must keep running
            log.exception("on_deposed failed")

    def _release_quietly(self, fence: Fence) -> None:
        try:
            self.manager.release(fence)
        except Exception:  # noqa: BLE001
            log.exception("releasing lease %r failed", self.manager.name)
