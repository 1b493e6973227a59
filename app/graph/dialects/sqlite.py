"""SQLite: one file shared by the processes of one host.

Set up for several processes on one file: WAL (readers never block the
writer), a busy timeout, and ``BEGIN IMMEDIATE`` for transactions on the write
engine (a deferred BEGIN that later upgrades to a write fails with "database is
locked" under concurrent writers instead of waiting). A SQLite file can only be
shared by processes on one host (WAL needs shared memory), so the host clock
stamps the writer lease (takeovers are timed by each candidate's monotonic
clock, ``app.ha.lease``) and a lock file beside the database carries the
writer's liveness (``app.graph.dialects.liveness``).

The request path reads through a raw ``sqlite3`` connection used inline on the
event loop. A check takes ~11 us there; handing it to a thread (executor or
``asyncio.to_thread``) costs ~52 us median and ~0.5 ms p99 of thread hand-off,
and SQLAlchemy's connection checkout ~90 us. WAL means a reader never waits for
the writer, so blocking the loop for a check is cheaper than any way around it;
the busy timeout only bounds rare WAL-index recovery waits.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects.base import (
    CHUNK,
    OBJECT_COLUMNS,
    Clock,
    DialectImpl,
    EdgeRow,
    ObjectRow,
    ObjectUpdateRow,
    VersionRow,
    host_clock_now,
)
from app.graph.dialects.liveness import FileLiveness
from app.graph.reach import REACH_SQL, Reach, reach_params, render
from app.graph.schema import writer_lease
from app.k8s.kinds import VertexKey

BUSY_TIMEOUT_MS = 10_000
# Short: an inline read that waits holds up every request on this worker.
READER_BUSY_TIMEOUT_MS = 2_000


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL (":memory:" is refused: replicas must share a file)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
    return database


def keyed_select_sql(table: str, columns: str, count: int) -> str:
    """SELECT ``columns`` of ``table`` (aliased ``t``) for ``count`` bound (kind, namespace, name) keys.

    A join from a VALUES list: SQLite plans a row-value ``IN (VALUES ...)`` as a table scan.
    """
    values = ", ".join(["(?, ?, ?)"] * count)
    return (
        f"SELECT {columns} FROM (VALUES {values}) AS k JOIN {table} t "  # noqa: S608
        "ON t.kind = k.column1 AND t.namespace = k.column2 AND t.name = k.column3"
    )


def tune_connection(dbapi_connection: Any) -> None:
    """Per-connection settings shared by the engines and the request-path reader."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash
    # can lose the last transactions, which the informers then re-deliver.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SqliteReader:
    """One connection, used only from the event loop's thread (no awaits inside a query)."""

    def __init__(self, path: str) -> None:
        # mode=rw: a mistyped path is an error, not a new empty database.
        uri = Path(path).resolve().as_uri() + "?mode=rw"
        self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout={READER_BUSY_TIMEOUT_MS}")
        # The writer put the file in WAL mode (persistent); this connection must never write.
        self._conn.execute("PRAGMA query_only=ON")
        self._sql, self._order = render(REACH_SQL, "qmark")

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        params = reach_params(node, kind, namespace, name)
        row = self._conn.execute(self._sql, tuple(params[k] for k in self._order)).fetchone()
        return Reach.from_code(row[0])

    async def ping(self) -> None:
        self._conn.execute("SELECT 1").fetchone()

    async def close(self) -> None:
        self._conn.close()


class SqliteImpl(DialectImpl):
    name: ClassVar[str] = "sqlite"

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def create_engine(self, url: str, *, pool_size: int, immediate: bool) -> Engine:
        path = sqlite_path(url)
        if immediate:
            engine = create_engine(url)
        else:
            # mode=rw: a read engine never creates a database file (a mistyped or deleted path is an
            # error, not a new empty database that looks unmigrated).
            uri = Path(path).resolve().as_uri() + "?mode=rw"
            engine = create_engine(
                url, creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
            )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            if immediate:
                # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
                dbapi_connection.isolation_level = None
            tune_connection(dbapi_connection)

        if immediate:

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def migration_lock(self, conn: Connection) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def clock_now(
        self, clock: Clock | None, duration: float
    ) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
        # SQLite has no arithmetic on stored datetimes: computed here, by this host's clock.
        return host_clock_now(clock, duration)

    def check_fence(
        self, conn: Connection, *, lease: str, holder: str, epoch: int, duration: float, clock: Clock | None
    ) -> bool:
        # Writers serialise on the database lock, so the holder's renewal waits behind a long write
        # anyway: instead every fenced write renews the lease itself. A busy writer thus keeps
        # changing the row, which resets every candidate's observation of it (app.ha.lease).
        t = writer_lease.c
        stmt = update(writer_lease).where(t.name == lease, t.holder == holder, t.epoch == epoch)
        if duration > 0:
            now, expires = host_clock_now(clock, duration)
            stmt = stmt.values(renewed_at=now, expires_at=expires)
        else:  # a fence without lease terms (built by hand): check only
            stmt = stmt.values(holder=t.holder)
        return conn.execute(stmt).rowcount == 1

    def lock_lease_for_takeover(self, conn: Connection, lease: str, wait_s: float) -> None:
        pass  # BEGIN IMMEDIATE already waited for every other write transaction

    def open_liveness(self, engine: Engine, lease: str) -> FileLiveness:
        return FileLiveness(sqlite_path(engine.url.render_as_string(hide_password=False)), lease)

    async def open_reader(self, url: str, *, pool_size: int) -> SqliteReader:
        return SqliteReader(sqlite_path(url))

    # -- bulk writes: one executemany on the raw driver (no per-row Python in SQLAlchemy) -----------

    def select_by_keys(
        self, conn: Connection, table: str, columns: str, keys: Sequence[VertexKey]
    ) -> Iterator[Sequence[Any]]:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            sql = keyed_select_sql(table, columns, len(chunk))
            yield from conn.exec_driver_sql(sql, tuple(v for key in chunk for v in key))

    def insert_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> dict[VertexKey, int]:
        conn.exec_driver_sql(
            "INSERT INTO vertices (kind, namespace, name) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", list(rows)
        )
        return {}  # RETURNING in parameter order would force one statement per row: read them back

    def insert_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> None:
        sql = f"INSERT INTO objects ({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
        conn.exec_driver_sql(sql, list(rows))

    def insert_edges(self, conn: Connection, rows: Sequence[EdgeRow]) -> None:
        conn.exec_driver_sql(
            "INSERT INTO edges (owner_id, from_id, to_id, node_id) VALUES (?, ?, ?, ?)", list(rows)
        )

    def update_versions(self, conn: Connection, rows: Sequence[VersionRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET resource_version = ? WHERE id = ?", [(rv, oid) for oid, rv in rows]
        )

    def update_objects(self, conn: Connection, rows: Sequence[ObjectUpdateRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET uid = ?, resource_version = ?, node_name = ?, fingerprint = ? WHERE id = ?",
            [(uid, rv, node, fp, oid) for oid, uid, rv, node, fp in rows],
        )
