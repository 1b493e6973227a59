"""Which replica writes the graph: a lease row in ``writer_lease``, fenced by ``epoch``.

The holder renews the row every ``duration / 3``. A candidate takes the lease
over (epoch + 1) in one of two cases, and nothing else:

- **the holder is dead**: the liveness lock of the row's epoch is free
  (``app.graph.dialects.liveness``: a PostgreSQL session advisory lock or a
  lock on a file beside the SQLite database, which the server or the kernel
  drops when the holder's process dies, or which the holder gives back on
  release). Candidates poll about once a second, so a crashed writer is
  replaced within about a second, not a lease duration.
- **the holder is alive but silent**: the candidate has seen the row unchanged
  (same holder, epoch and ``renewed_at``) for a whole lease duration by its
  *own monotonic clock*. This covers a paused (SIGSTOPped) or wedged writer.
  No wall clock is compared with another machine's or process's, so a
  candidate whose clock runs fast cannot steal a healthy lease: the row it
  watches keeps changing. On PostgreSQL the database clock could serve as an
  extra condition, but it adds nothing: a candidate starts watching no earlier
  than the last renewal, so a duration of watching already implies the
  database-clock expiry.

Either way the takeover is a compare-and-swap on exactly the row the candidate
observed, so a renewal that lands in between defeats it, and it first waits for
in-flight fenced writes (``DialectImpl.lock_lease_for_takeover``). Before the
swap the candidate takes the liveness lock of the new epoch, so the new epoch
is visibly alive from the moment it is readable, and two candidates cannot
both get there. ``expires_at`` stays in the row, for people and for readiness.

Safety never rests on any of this timing: every fenced write re-checks the
epoch in its own transaction (``app.graph.fence.check_fence_locked``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.graph.closure import forget_closure_locked, hand_over_locked
from app.graph.dialects import for_engine
from app.graph.dialects.base import Clock
from app.graph.dialects.liveness import LivenessLocks
from app.graph.fence import Fence
from app.graph.schema import writer_lease
from app.ha.lease_record import DEFAULT_LEASE, LeaseInfo, clock_exprs, read_lease

__all__ = ["LeaseManager"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Observed:
    """The lease row as a candidate saw it: what its takeover must find unchanged."""

    holder: str
    epoch: int
    renewed_at: datetime  # as the driver returned it, so it compares equal to the stored value
    released: bool = False  # given up by its holder (not part of what must stay unchanged)

    @property
    def key(self) -> tuple[str, int, datetime]:
        return (self.holder, self.epoch, self.renewed_at)


class LeaseManager:
    """Acquire, renew and release one named lease for one holder. Thread-safe.

    It remembers, as a candidate, which row it has seen and since when (by
    ``monotonic``), and, as the holder, the liveness lock of its epoch.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = DEFAULT_LEASE,
        holder: str,
        duration: float = 15.0,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if duration <= 0:
            raise ValueError("lease duration must be positive")
        self.engine = engine
        self.name = name
        self.holder = holder
        self.duration = duration
        self.clock = clock  # wall clock for the row's timestamps
        self.monotonic = monotonic  # times takeovers
        self._dialect = for_engine(engine)
        self._mutex = threading.Lock()
        self._observed: _Observed | None = None
        self._observed_since = 0.0
        self._liveness: LivenessLocks | None = None

    def _fence(self, epoch: int) -> Fence:
        return Fence(self.name, self.holder, epoch, duration=self.duration, clock=self.clock)

    @property
    def liveness(self) -> LivenessLocks:
        if self._liveness is None:
            self._liveness = self._dialect.open_liveness(self.engine, self.name)
        return self._liveness

    def try_acquire(self) -> Fence | None:
        """Take the lease if there is none, or its holder is dead or silent (new epoch); renew our own."""
        with self._mutex:
            taking: int | None = None  # the epoch whose liveness lock this call took
            try:
                with self.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, so nothing interleaves
                    row = self._read(conn)
                    if row is None:
                        if not self.liveness.hold(1):
                            return None
                        taking = 1
                        return self._create(conn)
                    if row.holder == self.holder and self.liveness.holds(row.epoch):
                        return self._renew_locked(conn, self._fence(row.epoch))  # our current term
                    if not self._may_take_over(row):
                        return None
                    # Held before the swap commits: a candidate that reads the new epoch finds it alive.
                    if not self.liveness.hold(row.epoch + 1):
                        return None  # another candidate is taking over right now
                    taking = row.epoch + 1
                    self._dialect.lock_lease_for_takeover(conn, self.name, self.duration)
                    return self._swap(conn, row)
            except BaseException:
                if taking is not None:
                    self.liveness.release(taking)
                raise

    def renew(self, fence: Fence) -> bool:
        """Extend the lease if this fence still holds it. False: it was taken over; stop writing."""
        with self.engine.begin() as conn:
            renewed = self._renew_locked(conn, fence) is not None
        if renewed:
            # Keep (or, after a lost database session, take back) the liveness lock: no peer can
            # take it meanwhile, as the epoch is ours, but without it a candidate thinks us dead.
            self.liveness.hold(fence.epoch)
        else:
            self.step_down(fence)
        return renewed

    def release(self, fence: Fence) -> None:
        """Give the lease up, if this fence still holds it, so a peer takes over at its next try.

        Marked by ``expires_at = renewed_at`` (a lease that expires as it is renewed): readable
        as expired by any clock, and no wall-clock "now" of this host is compared with anyone's.
        """
        t = writer_lease.c
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(writer_lease).where(*self._matches(fence)).values(expires_at=t.renewed_at)
                )
        finally:
            self.step_down(fence)

    def step_down(self, fence: Fence) -> None:
        """Stop holding ``fence``'s liveness lock (deposed, or given up): candidates may take over."""
        if (fence.lease, fence.holder) == (self.name, self.holder):
            self.liveness.release(fence.epoch)

    def close(self) -> None:
        if self._liveness is not None:
            self._liveness.close()

    def current(self) -> LeaseInfo | None:
        with self.engine.connect() as conn:
            return read_lease(conn, self.name, clock=self.clock)

    # -- inside try_acquire's transaction -----------------------------------------------------------

    def _read(self, conn: Connection) -> _Observed | None:
        t = writer_lease.c
        row = conn.execute(
            select(t.holder, t.epoch, t.renewed_at, t.expires_at <= t.renewed_at).where(t.name == self.name)
        ).first()
        return None if row is None else _Observed(row[0], row[1], row[2], released=bool(row[3]))

    def _may_take_over(self, row: _Observed) -> bool:
        if row.released:
            return True
        now = self.monotonic()
        if self._observed is None or row.key != self._observed.key:
            self._observed, self._observed_since = row, now
        if now - self._observed_since >= self.duration:
            log.warning(
                "lease %r: holder %s (epoch %d) has not renewed for %.1fs; taking over",
                self.name,
                row.holder,
                row.epoch,
                now - self._observed_since,
            )
            return True
        return self.liveness.is_free(row.epoch)  # free: its holder is dead, or let go

    def _create(self, conn: Connection) -> Fence | None:
        t = writer_lease.c
        now, expires = clock_exprs(conn, self.clock, self.duration)
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
        if created is None:
            self.liveness.release(1)
            return None
        # A new row starts epochs again at 1: a closure state left by an earlier row (deleted by hand)
        # could name an epoch and holder that recur, so it is dropped (the first write rebuilds).
        forget_closure_locked(conn, self.name)
        return self._fence(created.epoch)

    def _swap(self, conn: Connection, row: _Observed) -> Fence | None:
        t = writer_lease.c
        now, expires = clock_exprs(conn, self.clock, self.duration)
        swapped = conn.execute(
            update(writer_lease)
            .where(
                t.name == self.name,
                t.holder == row.holder,
                t.epoch == row.epoch,
                t.renewed_at == row.renewed_at,
            )
            .values(
                holder=self.holder, epoch=row.epoch + 1, acquired_at=now, renewed_at=now, expires_at=expires
            )
        )
        if swapped.rowcount != 1:
            self.liveness.release(row.epoch + 1)  # renewed (or taken) since we looked: it lives
            return None
        hand_over_locked(conn, self.name, row.epoch, self.holder, row.epoch + 1)
        self._observed = None
        log.info("lease %r: took over from %s (epoch %d)", self.name, row.holder, row.epoch)
        return self._fence(row.epoch + 1)

    def _renew_locked(self, conn: Connection, fence: Fence) -> Fence | None:
        t = writer_lease.c
        now, expires = clock_exprs(conn, self.clock, self.duration)
        result = conn.execute(
            update(writer_lease)
            .where(*self._matches(fence), t.expires_at > t.renewed_at)  # not released
            .values(renewed_at=now, expires_at=expires)
        )
        return fence if result.rowcount == 1 else None

    def _matches(self, fence: Fence) -> tuple[ColumnElement[bool], ...]:
        t = writer_lease.c
        return (t.name == fence.lease, t.holder == fence.holder, t.epoch == fence.epoch)
