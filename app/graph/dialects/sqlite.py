"""SQLite: one file shared by the processes of one host.

Set up for several processes on one file: WAL (readers never block the
writer), a busy timeout, and ``BEGIN IMMEDIATE`` for transactions on the write
engine (a deferred BEGIN that later upgrades to a write fails with "database is
locked" under concurrent writers instead of waiting). A SQLite file can only be
shared by processes on one host (WAL needs shared memory), so the host clock
stamps the writer lease (takeovers are timed by each candidate's monotonic
clock, ``app.ha.lease``) and a lock file beside the database carries the
writer's liveness (``app.graph.dialects.liveness``).

The request path reads through raw ``sqlite3`` connections on worker threads
(``SqliteReader``: SQLAlchemy's connection checkout alone costs ~90 us; inline on
the event loop a blocked read froze the whole server).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects.base import (
    CHUNK,
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
from app.graph.dialects.liveness import FileLiveness
from app.graph.reach import REACH_SQL, Reach, reach_params
from app.graph.schema import writer_lease
from app.k8s.kinds import VertexKey

IDENTITY_CHECK_S = 1.0  # how often the request path looks whether its database file was replaced
BUSY_TIMEOUT_MS = 10_000  # writers queue for the write lock
READ_BUSY_TIMEOUT_MS = 2_000
MIGRATION_LOCK_POLL_S = 0.1  # reads (lookups, probes) give up sooner: their callers have deadlines


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


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` now, or None if there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def tune_connection(dbapi_connection: Any, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Per-connection settings of the engines."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash
    # can lose the last transactions, which the informers then re-deliver.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# SQLite's WAL-index read locks: bytes 123-127 of the -shm file (its documented WAL format:
# lock bytes start at offset 120; 0 write, 1 checkpoint, 2 recover, 3-7 the read marks).
_WAL_READ_LOCKS = (123, 5)
_FLOCK = "hhqqi4x"  # struct flock on Linux (type, whence, start, len, pid)
# One never-closed descriptor per -shm file: closing any descriptor of a file drops every POSIX lock
# this process holds on it, SQLite's own included.
_SHM_FDS: dict[Path, int] = {}


def _shm_fd(path: Path, *, fresh: bool = False) -> int | None:
    """``fresh``: the database file was replaced, its -shm too (the old descriptor is left open)."""
    if sys.platform != "linux":
        return None  # the flock layout above is Linux's; elsewhere every read goes to a thread
    shm = Path(f"{path}-shm")
    if fresh or shm not in _SHM_FDS:
        try:
            _SHM_FDS[shm] = os.open(shm, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
    return _SHM_FDS[shm]


def _wal_read_locks_free(fd: int) -> bool:
    """No other process holds a WAL-index read lock exclusively (a read would not wait): one syscall."""
    probe = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, *_WAL_READ_LOCKS, 0)
    found = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    return bool(struct.unpack(_FLOCK, found)[0] == fcntl.F_UNLCK)


_MUST_WAIT = object()  # an inline read was not possible: read on a thread, within the deadline


class SqliteReader:
    """Reads inline on the event loop when nothing can make them wait; on a worker thread otherwise.

    A WAL reader can block inside SQLite whatever its busy timeout: its read-lock retry loop sleeps
    for up to seconds while another process holds the WAL-index read locks (recovering a crashed
    writer's WAL, or paused mid-recovery). Inline on the event loop that froze every endpoint,
    /healthz included; on a thread every check costs more (measured: 9 us inline, 30 us through
    ``asyncio.to_thread``, and p99 grows with GIL hand-offs under load). So a check first asks the
    kernel whether those locks are held (one ``fcntl``): if free, it reads inline with no busy
    timeout (a lock taken in between fails the read at once instead of waiting); if held, or when
    the inline read finds the database busy, it reads on a thread within the caller's deadline.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self._path = Path(path).resolve()
        # mode=rw: a mistyped path is an error, not a new empty database.
        self._uri = self._path.as_uri() + "?mode=rw"
        self._busy_timeout_ms = int(timeout * 1000)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # sqlite3 binds REACH_SQL's ``:name`` parameters from a mapping as they are: no rendering.
        self._sql = REACH_SQL
        # Which file the connections read, re-checked at most every IDENTITY_CHECK_S: a connection
        # keeps reading a deleted or replaced file's old contents forever.
        self._generation = 0
        self._identity = file_identity(self._path)
        self._checked_at = time.monotonic()
        # Opened and read now: a missing file fails at start, not at the first check; and the read
        # makes SQLite create the -shm file whose locks ``_query`` looks at.
        self._connection(inline=True).execute("SELECT count(*) FROM sqlite_master").fetchone()
        self._shm, self._shm_generation = _shm_fd(self._path), 0

    def _current_generation(self) -> int:
        now = time.monotonic()
        if now - self._checked_at >= IDENTITY_CHECK_S:
            with self._lock:
                self._checked_at = now
                identity = file_identity(self._path)
                if identity != self._identity:
                    self._identity, self._generation = identity, self._generation + 1
        if self._identity is None:
            raise sqlite3.OperationalError(f"database file {self._path} is gone")
        return self._generation

    def _connection(self, *, inline: bool) -> sqlite3.Connection:
        generation = self._current_generation()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != generation:
            with self._lock:
                self._opened.remove(conn)
            conn.close()
            conn = None
        if conn is None:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
            # Inline (the event loop's thread) a read never waits; on a worker thread, up to the deadline.
            conn.execute(f"PRAGMA busy_timeout={0 if inline else self._busy_timeout_ms}")
            # The writer put the file in WAL mode (persistent); these connections must never write.
            conn.execute("PRAGMA query_only=ON")
            self._local.conn, self._local.generation = conn, generation
            with self._lock:
                self._opened.append(conn)
        return conn

    def _read(self, sql: str, args: Mapping[str, object] | tuple[object, ...]) -> Any:
        return self._connection(inline=False).execute(sql, args).fetchone()

    def _inline(self, sql: str, args: Mapping[str, object] | tuple[object, ...]) -> Any:
        """The row, read on this thread if nothing can make the read wait; ``_MUST_WAIT`` otherwise."""
        if self._shm_generation != self._generation or self._shm is None:
            self._shm, self._shm_generation = _shm_fd(self._path, fresh=True), self._generation
        if self._shm is not None and _wal_read_locks_free(self._shm):
            try:
                return self._connection(inline=True).execute(sql, args).fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
        return _MUST_WAIT

    async def _query(self, sql: str, args: Mapping[str, object] | tuple[object, ...]) -> Any:
        row = self._inline(sql, args)
        if row is _MUST_WAIT:
            row = await asyncio.to_thread(self._read, sql, args)
        return row

    def reach_now(self, node: str, kind: str, namespace: str, name: str) -> Reach | None:
        """The check, answered inline if nothing can make it wait; None: await ``reach`` instead.

        The request path tries this first: a read that cannot wait needs no deadline timer and no
        trip through the event loop (``app.web.authorize.decide_with_graph``).
        """
        row = self._inline(self._sql, reach_params(node, kind, namespace, name))
        return None if row is _MUST_WAIT else Reach.from_code(row[0])

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        row = await self._query(self._sql, reach_params(node, kind, namespace, name))
        return Reach.from_code(row[0])

    async def ping(self) -> None:
        await self._query("SELECT 1", ())

    async def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


@contextlib.contextmanager
def migration_file_lock(database: str) -> Iterator[None]:
    """One migrator at a time on a file: an exclusive ``flock`` on ``<database>-migrate.lock``.

    Without it, migrators queue on SQLite's write lock, for at most the busy timeout every writer
    shares (10 s): a longer migration made the others fail with "database is locked". A lock file
    rather than ``BEGIN IMMEDIATE`` held across the run: waiting is bounded by its own limit, it spans
    alembic's whole run (version read, every step, the schema window) however alembic groups its
    transactions, a waiter holds no database lock (readers and the writer carry on), and the kernel
    drops it when its holder dies (SIGKILL). The waiter then reads the version alembic left: head.
    """
    where = f"{database}-migrate.lock"
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + MIGRATION_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MigrationLockTimeout(where) from None
                time.sleep(MIGRATION_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock


class SqliteImpl(DialectImpl):
    name: ClassVar[str] = "sqlite"

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def create_engine(self, url: str, *, pool_size: int, immediate: bool, create: bool = False) -> Engine:
        path = Path(sqlite_path(url)).resolve()
        # mode=rw: only migrations create a database file; elsewhere a mistyped or deleted path is an
        # error, not a new empty database that looks unmigrated.
        uri = path.as_uri() + ("?mode=rwc" if create else "?mode=rw")
        engine = create_engine(url, creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
        busy_timeout_ms = BUSY_TIMEOUT_MS if immediate else READ_BUSY_TIMEOUT_MS

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            if immediate:
                # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
                dbapi_connection.isolation_level = None
            tune_connection(dbapi_connection, busy_timeout_ms)
            record.info["file"] = file_identity(path)

        @event.listens_for(engine, "checkout")
        def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            # A pooled connection keeps reading and writing a file that was deleted or replaced at
            # this path: drop it, so the next one opens what is there now (or fails if nothing is).
            if record.info.get("file") != file_identity(path):
                raise DisconnectionError(f"{path} was deleted or replaced")

        @event.listens_for(engine, "handle_error")
        def _handle_error(context: Any) -> None:
            # A connection opened while the file was read-only stays read-only: drop the pool, so
            # writing resumes once the file is writable again.
            if "readonly database" in str(context.original_exception):
                context.is_disconnect = True

        if immediate:

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def migration_lock(self, conn: Connection) -> AbstractContextManager[None]:
        return migration_file_lock(sqlite_path(conn.engine.url.render_as_string(hide_password=False)))

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

    async def open_reader(self, url: str, *, pool_size: int, timeout: float) -> SqliteReader:
        return SqliteReader(sqlite_path(url), timeout)

    # -- bulk writes: one executemany on the raw driver (no per-row Python in SQLAlchemy) -----------

    def select_by_keys(
        self, conn: Connection, table: str, columns: str, keys: Sequence[VertexKey]
    ) -> Iterator[Sequence[Any]]:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            sql = keyed_select_sql(table, columns, len(chunk))
            yield from conn.exec_driver_sql(sql, tuple(v for key in chunk for v in key)).fetchall()

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

    # Ids chosen here (max + 1 ...: SQLite's own choice without AUTOINCREMENT), safe under BEGIN
    # IMMEDIATE; RETURNING in parameter order would force one statement per row.
    def _next_ids(self, conn: Connection, table: str, count: int) -> list[int]:
        top = conn.exec_driver_sql(f"SELECT max(id) FROM {table}").scalar() or 0  # noqa: S608 - a constant
        return list(range(top + 1, top + 1 + count))

    def insert_new_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> list[int]:
        ids = self._next_ids(conn, "vertices", len(rows))
        conn.exec_driver_sql(
            "INSERT INTO vertices (id, kind, namespace, name) VALUES (?, ?, ?, ?)",
            [(i, *key) for i, key in zip(ids, rows, strict=True)],
        )
        return ids

    def insert_new_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> list[int]:
        ids = self._next_ids(conn, "objects", len(rows))
        sql = f"INSERT INTO objects (id, {OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
        conn.exec_driver_sql(sql, [(i, *row) for i, row in zip(ids, rows, strict=True)])
        return ids

    def update_versions(self, conn: Connection, rows: Sequence[VersionRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET resource_version = ? WHERE id = ?", [(rv, oid) for oid, rv in rows]
        )

    def update_objects(self, conn: Connection, rows: Sequence[ObjectUpdateRow]) -> None:
        conn.exec_driver_sql(
            "UPDATE objects SET uid = ?, resource_version = ?, node_name = ?, fingerprint = ? WHERE id = ?",
            [(uid, rv, node, fp, oid) for oid, uid, rv, node, fp in rows],
        )
