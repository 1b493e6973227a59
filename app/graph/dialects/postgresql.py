"""PostgreSQL: the shared server of an HA deployment.

- Writes use psycopg 3 through SQLAlchemy; bulk statements send each column as
  an array (``INSERT ... SELECT * FROM unnest(...)``), one statement per batch.
- The writer lease's timestamps come from the database's clock
  (``statement_timestamp()``): replicas on different hosts have skewed clocks,
  and the database is the one clock they all share. (Takeovers are timed by
  each candidate's monotonic clock, ``app.ha.lease``.) A fenced write takes the
  lease row FOR KEY SHARE, so renewals never wait behind it; the writer's
  liveness is a session advisory lock (``app.graph.dialects.liveness``).
- The request path reads through a fixed set of asyncpg connections (its
  per-connection statement cache prepares the reach query once per connection);
  about half the cost of psycopg through SQLAlchemy.
- Replicas that migrate at once take turns on a session-level advisory lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Interval,
    Table,
    create_engine,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects.base import (
    MIGRATION_LOCK_TIMEOUT_S,
    OBJECT_COLUMNS,
    Clock,
    DialectImpl,
    EdgeRow,
    MigrationLockTimeout,
    ObjectRow,
    ObjectUpdateRow,
    VersionRow,
    host_clock_now,
)
from app.graph.dialects.liveness import AdvisoryLiveness
from app.graph.reach import REACH_SQL, Reach, reach_params, render
from app.graph.schema import writer_lease
from app.k8s.kinds import VertexKey

MIGRATION_LOCK_KEY = 0x6E6F6465617574  # "nodeaut": the advisory lock id for migrations
READER_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout (whole seconds)
READ_STATEMENT_TIMEOUT_MS = 2_000
READER_APPLICATION_NAME = "nodeauthz-reader"


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver suffix) as a libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


class PostgresReader:
    """A fixed set of asyncpg connections handed out through a queue.

    asyncpg's Pool does more per acquire/release than a one-statement read needs
    (measured in a loop: 199 us per check through the pool without its reset, 150 us
    on a held connection). A connection whose query failed or was cancelled is
    dropped, not reused: its protocol state is unknown; the next caller opens a new one.
    """

    def __init__(self, dsn: str, pool_size: int, timeout: float) -> None:
        self._dsn = dsn
        self._size = pool_size
        self._timeout = timeout
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._open = 0  # connections open or being opened
        self._sql, self._order = render(REACH_SQL, "numeric")

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int, timeout: float = READER_TIMEOUT_S) -> PostgresReader:
        reader = cls(dsn, pool_size, timeout)
        await reader._connect_first()
        return reader

    async def _connect_first(self) -> None:
        """One connection at once, so a database that cannot be reached fails the open."""
        self._open += 1
        try:
            self._idle.put_nowait(await self._connect())
        except BaseException:
            self._open -= 1
            raise

    async def _connect(self) -> Any:
        import asyncpg  # only needed on PostgreSQL

        # Both bounded: a stalled server must fail a check, not hold it past the API server's timeout.
        return await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            command_timeout=self._timeout,
            server_settings={"application_name": READER_APPLICATION_NAME},  # visible in pg_stat_activity
        )

    async def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self._open < self._size:
            self._open += 1  # reserve the slot before awaiting
            try:
                return await self._connect()
            except BaseException:
                self._open -= 1
                raise
        return await self._idle.get()

    def _discard(self, conn: Any) -> None:
        self._open -= 1
        conn.terminate()

    async def _fetchrow_on(self, conn: Any, sql: str, *args: Any) -> Any:
        """One statement on an acquired connection; on failure the connection is dropped (its state is
        unknown) and the next caller opens a new one."""
        try:
            return await conn.fetchrow(sql, *args, timeout=self._timeout)
        except BaseException:
            self._discard(conn)
            raise

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        conn = await self._acquire()  # bounded by the caller: the check as a whole has a deadline
        row = await self._fetchrow_on(conn, sql, *args)
        self._idle.put_nowait(conn)
        return row

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        params = reach_params(node, kind, namespace, name)
        row = await self._fetchrow(self._sql, *(params[k] for k in self._order))
        return Reach.from_code(row[0])

    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    async def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            self._open -= 1
            # Bounded: a wedged connection must not hold up shutdown.
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except TimeoutError:
                conn.terminate()


class PostgresqlImpl(DialectImpl):
    name: ClassVar[str] = "postgresql"

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def create_engine(self, url: str, *, pool_size: int, immediate: bool, create: bool = False) -> Engine:
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if not immediate:
            # Reads (admission lookups, probes, explain) never hold a thread for long on a stalled server.
            connect_args["options"] = f"-c statement_timeout={READ_STATEMENT_TIMEOUT_MS}"
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
        )

    def statistics_rows(self, conn: Connection, table: str) -> float | None:
        # Without column statistics the planner guesses every selectivity, whatever reltuples says
        # (-1 before the first ANALYZE; kept by a rolled-back one, whose column statistics are gone).
        value = conn.execute(
            text(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema()"
                " AND tablename = :t) THEN reltuples ELSE 0 END FROM pg_class WHERE oid = to_regclass(:t)"
            ),
            {"t": table},
        ).scalar()
        return max(float(value or 0.0), 0.0)

    def analyze(self, conn: Connection, tables: Sequence[str]) -> None:
        quote = conn.dialect.identifier_preparer.quote
        conn.execute(text("ANALYZE " + ", ".join(quote(t) for t in tables)))

    def limit_statement_time(self, conn: Connection, milliseconds: int) -> None:
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(milliseconds)})

    @contextmanager
    def _advisory_lock(self, conn: Connection) -> Iterator[None]:
        # Session-level, not transaction-level: an autocommit_block() would release the latter.
        # Bounded wait: a stuck migration elsewhere gives a clear error, not a hung rollout.
        conn.execute(text(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT_S}s'"))
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        except Exception as exc:
            raise MigrationLockTimeout("a PostgreSQL advisory lock") from exc
        conn.execute(text("SET lock_timeout = 0"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()

    def migration_lock(self, conn: Connection) -> AbstractContextManager[None]:
        return self._advisory_lock(conn)

    def clock_now(
        self, clock: Clock | None, duration: float
    ) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
        if clock is not None:  # tests inject one
            return host_clock_now(clock, duration)
        # A statement that waited for the row lock judges expiry as of when it started,
        # which only makes takeovers later and leases shorter, never the reverse.
        now_sql = func.statement_timestamp(type_=DateTime(timezone=True))
        return now_sql, now_sql + literal(timedelta(seconds=duration), Interval())

    def check_fence(
        self, conn: Connection, *, lease: str, holder: str, epoch: int, duration: float, clock: Clock | None
    ) -> bool:
        # FOR KEY SHARE: the holder's renewals (UPDATEs of non-key columns) do not conflict with it, so
        # they never wait behind a long write; a takeover's FOR UPDATE does, so it waits for this
        # transaction to end. A writer paused inside a fenced transaction (SIGSTOP, a VM pause)
        # would hold a takeover off for as long as it stays paused: the server ends such a session
        # once it has been idle in the transaction for a whole lease duration.
        t = writer_lease.c
        idle_ms = str(max(1, int(duration * 1000))) if duration > 0 else "0"
        row = conn.execute(
            select(t.holder, t.epoch, func.set_config("idle_in_transaction_session_timeout", idle_ms, True))
            .where(t.name == lease)
            .with_for_update(read=True, key_share=True)  # FOR KEY SHARE (read=False would be NO KEY UPDATE)
        ).first()
        return row is not None and (row.holder, row.epoch) == (holder, epoch)

    def lock_lease_for_takeover(self, conn: Connection, lease: str, wait_s: float) -> None:
        conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{int(wait_s * 1000)}"})
        conn.execute(select(writer_lease.c.name).where(writer_lease.c.name == lease).with_for_update())

    def open_liveness(self, engine: Engine, lease: str) -> AdvisoryLiveness:
        return AdvisoryLiveness(engine, lease)

    async def open_reader(self, url: str, *, pool_size: int, timeout: float) -> PostgresReader:
        return await PostgresReader.open(asyncpg_dsn(url), pool_size=pool_size, timeout=timeout)

    # -- bulk writes: each column as an array, one statement per batch ------------------------------

    def select_by_keys(
        self, conn: Connection, table: str, columns: str, keys: Sequence[VertexKey]
    ) -> Iterator[Sequence[Any]]:
        sql = (
            f"SELECT {columns} FROM unnest(%s::text[], %s::text[], %s::text[]) "  # noqa: S608
            f"AS k(column1, column2, column3) JOIN {table} t "
            "ON t.kind = k.column1 AND t.namespace = k.column2 AND t.name = k.column3"
        )
        yield from conn.exec_driver_sql(sql, tuple(_columns(keys, 3))).fetchall()

    def insert_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> dict[VertexKey, int]:
        # RETURNING gives the new rows' ids in the same round trip; only pre-existing ones are read back.
        result = conn.exec_driver_sql(
            "INSERT INTO vertices (kind, namespace, name) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING "
            "RETURNING id, kind, namespace, name",
            tuple(_columns(rows, 3)),
        )
        return {VertexKey(kind, ns, name): vid for vid, kind, ns, name in result}

    def insert_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> None:
        conn.exec_driver_sql(
            f"INSERT INTO objects ({OBJECT_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
            "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])",
            tuple(_columns(rows, 7)),
        )

    def insert_edges(self, conn: Connection, rows: Sequence[EdgeRow]) -> None:
        conn.exec_driver_sql(
            "INSERT INTO edges (owner_id, from_id, to_id, node_id) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])",
            tuple(_columns(rows, 4)),
        )

    def insert_new_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> list[int]:
        result = conn.exec_driver_sql(
            "INSERT INTO vertices (kind, namespace, name) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) RETURNING id, kind, namespace, name",
            tuple(_columns(rows, 3)),
        )
        ids = {VertexKey(kind, ns, name): vid for vid, kind, ns, name in result}
        return [ids[key] for key in rows]

    def insert_new_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> list[int]:
        result = conn.exec_driver_sql(
            f"INSERT INTO objects ({OBJECT_COLUMNS}) SELECT * FROM unnest("  # noqa: S608
            "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "RETURNING id, kind, namespace, name",
            tuple(_columns(rows, 7)),
        )
        ids = {VertexKey(kind, ns, name): oid for oid, kind, ns, name in result}
        return [ids[VertexKey(row[0], row[1], row[2])] for row in rows]

    def update_versions(self, conn: Connection, rows: Sequence[VersionRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET resource_version = u.rv "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(id, rv) WHERE objects.id = u.id",
            tuple(_columns(rows, 2)),
        )

    def update_objects(self, conn: Connection, rows: Sequence[ObjectUpdateRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET uid = u.uid, resource_version = u.rv, node_name = u.node, fingerprint = u.fp "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS u(id, uid, rv, node, fp) WHERE objects.id = u.id",
            tuple(_columns(rows, 5)),
        )
