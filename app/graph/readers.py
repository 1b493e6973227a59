"""The request path's read of the graph: one ``REACH_SQL`` per check, on a raw driver.

Chosen by measurement (small preset, 2 cores; see the project's benchmark notes):

- SQLite: a raw ``sqlite3`` connection used inline on the event loop. A check
  takes ~11 us there; handing it to a thread (executor or ``asyncio.to_thread``)
  costs ~52 us median and ~0.5 ms p99 of thread hand-off, and SQLAlchemy's
  connection checkout ~90 us. WAL means a reader never waits for the writer, so
  blocking the loop for a check is cheaper than any way around it; the busy
  timeout only bounds rare WAL-index recovery waits.
- PostgreSQL: an asyncpg pool (its per-connection statement cache prepares
  ``REACH_SQL`` once per connection); about half of psycopg-through-SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from app.graph.database import is_sqlite, resolve_url, sqlite_path
from app.graph.reach import REACH_SQL, Reach, reach_params, render

DEFAULT_POOL_SIZE = 10
# Short: an inline read that waits holds up every request on this worker.
READER_BUSY_TIMEOUT_MS = 2_000


class Reader(Protocol):
    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


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


class PostgresReader:
    """A fixed set of asyncpg connections handed out through a queue.

    asyncpg's Pool does more per acquire/release than a one-statement read needs
    (measured in a loop: 199 us per check through the pool without its reset, 150 us
    on a held connection). A connection whose query failed or was cancelled is
    dropped, not reused: its protocol state is unknown; the next caller opens a new one.
    """

    def __init__(self, dsn: str, pool_size: int) -> None:
        self._dsn = dsn
        self._size = pool_size
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._open = 0  # connections open or being opened
        self._sql, self._order = render(REACH_SQL, "numeric")

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int) -> PostgresReader:
        reader = cls(dsn, pool_size)
        reader._open += 1
        try:
            reader._idle.put_nowait(await reader._connect())
        except BaseException:
            reader._open -= 1
            raise
        return reader

    async def _connect(self) -> Any:
        import asyncpg  # only needed on PostgreSQL

        return await asyncpg.connect(self._dsn, command_timeout=10)

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

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        conn = await self._acquire()
        try:
            row = await conn.fetchrow(sql, *args)
        except BaseException:
            self._open -= 1
            conn.terminate()
            raise
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


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver suffix) as a libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def open_reader(url: str | None = None, *, pool_size: int = DEFAULT_POOL_SIZE) -> Reader:
    """The reader for a database URL (resolved like every other command's)."""
    resolved = resolve_url(url)
    if is_sqlite(resolved):
        return SqliteReader(sqlite_path(resolved))
    return await PostgresReader.open(asyncpg_dsn(resolved), pool_size=pool_size)
