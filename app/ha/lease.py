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
(``app.graph.fence.check_fence_locked``).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, case, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects import for_engine, for_name
from app.graph.dialects.base import Clock
from app.graph.fence import Fence
from app.graph.schema import writer_lease

__all__ = [
    "DEFAULT_LEASE",
    "Clock",
    "LeaseHeld",
    "LeaseInfo",
    "LeaseManager",
    "hold_lease",
    "read_lease",
    "unique_holder",
]

DEFAULT_LEASE = "graph-writer"
log = logging.getLogger(__name__)


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
    """(now, now + duration) as SQL, by the clock that judges the lease (see the module docstring)."""
    return for_name(conn.dialect.name).clock_now(clock, duration)


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
        self.engine = engine
        self.name = name
        self.holder = holder
        self.duration = duration
        self.clock = clock
        self._dialect = for_engine(engine)

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
                self._dialect.insert(writer_lease)
                .values(
                    name=self.name,
                    holder=self.holder,
                    epoch=1,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=expires,
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


class LeaseHeld(RuntimeError):
    """Another process holds the writer lease: a writer is syncing this database."""


@contextmanager
def hold_lease(
    engine: Engine, holder: str, *, name: str = DEFAULT_LEASE, duration: float = 15.0
) -> Iterator[Fence]:
    """The writer lease for a one-shot writer (``load``, ``demo``), released on exit.

    Raises LeaseHeld when a live writer holds it: a file loaded into a database that a
    writer is syncing would be overwritten (or would overwrite the cluster's truth).
    """
    manager = LeaseManager(engine, name=name, holder=holder, duration=duration)
    fence = manager.try_acquire()
    if fence is None:
        current = manager.current()
        who = f"{current.holder} (epoch {current.epoch})" if current else "another writer"
        raise LeaseHeld(f"the writer lease is held by {who}: a writer is syncing this database")
    try:
        yield fence
    finally:
        manager.release(fence)
