"""Reading from PostgreSQL hot standbys (``--read-database-url``) without ever serving a stale answer.

The rule (``app.graph.freshness``): a connection may answer only when it has
replayed what the primary had flushed at most ``bound`` seconds ago, by this
process's monotonic clock.

- ``PrimarySampler`` asks the primary (``--database-url``) for its WAL flush
  position every ``SAMPLE_INTERVAL_S``, on one connection of its own, off the
  request path: a few cheap statements a second per webhook process.
- ``StandbyReader`` verifies each check on the connection that answers it, so
  several standbys behind one service name (each connection may reach another
  one, a reconnect may land elsewhere) are judged one by one, never by a
  figure shared between them. Checks that wait at the same moment go as one
  statement (``PostgresReader``): one verification covers them all. Each check
  statement also returns the connection's replay position, read after its
  snapshot was taken, so the next one on that connection knows a position its
  snapshot will include: under load a check costs one round trip; a connection
  idle for longer than the bound asks for its position first (a second round trip).
- ``FreshLookups``: NodeRestriction's look-ups, with the same verification on
  their connection before they read.

A connection that cannot be shown fresh raises ``StaleRead``: the check answers
no-opinion, the admission review is refused with code 500, each with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from app.graph.dialects.postgresql import PostgresReader, asyncpg_dsn
from app.graph.freshness import Position, PrimaryHistory, Sample, StaleRead, parse_lsn
from app.graph.lookups import Authorizer, StoreLookups, no_authorizer
from app.graph.reach import Check, Reach, batch_reach_params, reach_params

__all__ = [
    "DEFAULT_MAX_READ_LAG_S",
    "FreshLookups",
    "PrimarySampler",
    "ReadReplica",
    "StandbyReader",
    "check_read_url",
]

LOG = logging.getLogger("nodeauthz.standby")

DEFAULT_MAX_READ_LAG_S = 5.0
SAMPLE_INTERVAL_S = 0.2
SAMPLER_APPLICATION_NAME = "nodeauthz-freshness"

# The connection's own position: a standby's replay position; a primary's (or a promoted standby's)
# flush position and timeline (the first 8 hex digits of its WAL file name).
POSITION_COLUMNS = (
    "pg_is_in_recovery() AS in_recovery, "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS lsn, "
    "CASE WHEN pg_is_in_recovery() THEN NULL "
    "ELSE substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8) END AS timeline"
)
POSITION_SQL = f"SELECT {POSITION_COLUMNS}"
# On a standby pg_walfile_name raises: the sampler must talk to the primary.
SAMPLE_SQL = (
    "SELECT pg_current_wal_flush_lsn()::text, substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8)"
)


def check_read_url(primary_url: str, read_url: str) -> None:
    """Raise ValueError unless both URLs are PostgreSQL: standbys are PostgreSQL's way to scale reads."""
    for flag, url in (("--database-url", primary_url), ("--read-database-url", read_url)):
        if (backend := make_url(url).get_backend_name()) != "postgresql":
            raise ValueError(f"--read-database-url needs PostgreSQL for both databases; {flag} is {backend}")


def position_of(row: Any, offset: int = 0) -> Position:
    """A ``Position`` from ``POSITION_COLUMNS`` starting at column ``offset`` of a row."""
    in_recovery, lsn, timeline = row[offset], row[offset + 1], row[offset + 2]
    return Position(
        lsn=parse_lsn(lsn) if lsn else 0,
        timeline=int(timeline, 16) if timeline else None,
        in_recovery=bool(in_recovery),
    )


class ReadReplica:
    """The primary's recent positions and the bound: what every standby connection is judged by."""

    def __init__(self, bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        if bound <= 0:
            raise ValueError("the read lag bound must be positive")
        self.bound = bound
        self.clock = clock
        self.history = PrimaryHistory(keep=max(30.0, 4 * bound))

    def fresh(self, position: Position) -> bool:
        try:
            self.check(position)
        except StaleRead:
            return False
        return True

    def check(self, position: Position) -> None:
        self.history.check(position, self.clock(), self.bound)

    def lag(self, position: Position) -> float | None:
        return self.history.lag(position, self.clock())

    def require_primary_heard(self) -> None:
        self.history.target(self.clock(), self.bound)


class PrimarySampler:
    """Records the primary's WAL flush position every ``interval`` seconds until cancelled."""

    def __init__(
        self,
        primary_url: str,
        replica: ReadReplica,
        *,
        interval: float = SAMPLE_INTERVAL_S,
        timeout: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(primary_url)
        self._replica = replica
        self._interval = interval
        self._timeout = timeout
        self._conn: Any = None
        self._failing: str | None = None

    async def sample_once(self) -> Sample:
        import asyncpg

        if self._conn is None:
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                command_timeout=self._timeout,
                server_settings={"application_name": SAMPLER_APPLICATION_NAME},
            )
        at = self._replica.clock()  # before asking: everything acknowledged by now lies at or below
        try:
            lsn, timeline = await self._conn.fetchrow(SAMPLE_SQL, timeout=self._timeout)
        except BaseException:
            self._conn.terminate()
            self._conn = None
            raise
        sample = Sample(at=at, lsn=parse_lsn(lsn), timeline=int(timeline, 16))
        self._replica.history.record(sample)
        return sample

    async def run(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(self._timeout * 2):
                        await self.sample_once()
                    if self._failing is not None:
                        LOG.info("the primary's WAL position is readable again")
                        self._failing = None
                except Exception as exc:  # noqa: BLE001 - keep sampling; checks judge by what was recorded
                    if self._conn is not None:
                        self._conn.terminate()
                        self._conn = None
                    why = f"{type(exc).__name__}: {exc}"
                    if why != self._failing:  # once per distinct failure, not five times a second
                        LOG.warning("cannot read the primary's WAL position (%s); retrying", why)
                        self._failing = why
                await asyncio.sleep(self._interval)
        finally:
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None


class StandbyReader(PostgresReader):
    """``PostgresReader`` over a standby: every check verified on its own connection (module doc)."""

    def __init__(self, dsn: str, pool_size: int, timeout: float, replica: ReadReplica) -> None:
        super().__init__(dsn, pool_size, timeout)
        self._replica = replica
        self._positions: dict[Any, Position] = {}  # per open connection: a position its next snapshot holds
        self._checked_sql = f"SELECT r.reach, {POSITION_COLUMNS} FROM ({self._sql}) r"  # noqa: S608
        self._checked_batch_sql = f"SELECT r.reaches, {POSITION_COLUMNS} FROM ({self._batch_sql}) r"  # noqa: S608

    @classmethod
    async def open_standby(
        cls, url: str, replica: ReadReplica, *, pool_size: int, timeout: float
    ) -> StandbyReader:
        reader = cls(asyncpg_dsn(url), pool_size, timeout, replica)
        await reader._connect_first()
        return reader

    def _discard(self, conn: Any) -> None:
        self._positions.pop(conn, None)
        super()._discard(conn)

    async def position(self) -> Position:
        """One connection's position, asked now (readiness uses it)."""
        conn = await self._acquire()
        row = await self._fetchrow_on(conn, POSITION_SQL)
        self._positions[conn] = position = position_of(row)
        self._idle.put_nowait(conn)
        return position

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        self._replica.require_primary_heard()  # fail before queueing
        return await super().reach(node, kind, namespace, name)

    async def _codes_on(self, conn: Any, checks: Sequence[Check]) -> Sequence[int]:
        """The batch on a connection shown fresh now (once for all its checks)."""
        known = self._positions.get(conn)
        if known is None or not self._replica.fresh(known):
            self._positions[conn] = known = position_of(await self._fetchrow_on(conn, POSITION_SQL))
            self._replica.check(known)  # StaleRead: every check of the batch refuses
        if len(checks) == 1:
            params = reach_params(*checks[0])
            row = await self._fetchrow_on(conn, self._checked_sql, *(params[k] for k in self._order))
            codes = [row[0]]
        else:
            params = batch_reach_params(checks)
            row = await self._fetchrow_on(
                conn, self._checked_batch_sql, *(params[k] for k in self._batch_order)
            )
            codes = list(row[0])
        self._positions[conn] = position_of(row, 1)
        return codes

    async def close(self) -> None:
        await super().close()
        self._positions.clear()


class FreshLookups(StoreLookups):
    """NodeRestriction's look-ups on a standby: the connection's position is verified before each read,
    so the read's snapshot holds at least that position."""

    def __init__(self, engine: Engine, replica: ReadReplica, authorizer: Authorizer = no_authorizer) -> None:
        super().__init__(engine, authorizer)
        self.replica = replica

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            self.replica.check(position_of(conn.exec_driver_sql(POSITION_SQL).one()))
            yield conn
