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

from app.database import is_sqlite, resolve_url, sqlite_path
from app.reachability import REACH_SQL, Reach, reach_params, render

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
    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._sql, self._order = render(REACH_SQL, "numeric")

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int) -> PostgresReader:
        import asyncpg  # only needed on PostgreSQL

        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=pool_size, command_timeout=10, reset=_keep_session
        )
        return cls(pool)

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        params = reach_params(node, kind, namespace, name)
        row = await self._pool.fetchrow(self._sql, *(params[k] for k in self._order))
        return Reach.from_code(row[0])

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        # Bounded: a wedged connection must not hold up shutdown.
        try:
            await asyncio.wait_for(self._pool.close(), timeout=5)
        except TimeoutError:
            self._pool.terminate()


async def _keep_session(connection: Any) -> None:
    """No reset on release: these connections only run one read-only SELECT and never change
    session state, while asyncpg's default reset is another round trip per request (a check in
    a loop: 321 us with it, 199 us without, 150 us on a held connection)."""


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (any driver suffix) as a libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def open_reader(url: str | None = None, *, pool_size: int = DEFAULT_POOL_SIZE) -> Reader:
    """The reader for a database URL (resolved like every other command's)."""
    resolved = resolve_url(url)
    if is_sqlite(resolved):
        return SqliteReader(sqlite_path(resolved))
    return await PostgresReader.open(asyncpg_dsn(resolved), pool_size=pool_size)
