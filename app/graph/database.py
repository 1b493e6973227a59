"""Database URLs and engines: one place that knows SQLite's and PostgreSQL's quirks.

SQLite is set up for several processes sharing one file: WAL (readers never
block the writer), a busy timeout, and ``BEGIN IMMEDIATE`` for transactions on
the write engine (a deferred BEGIN that later upgrades to a write fails with
"database is locked" under concurrent writers instead of waiting).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///nodeauthz.db"
URL_ENV = "NODEAUTHZ_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def resolve_url(url: str | None = None) -> str:
    """The database URL: explicit, else ``$NODEAUTHZ_DATABASE_URL``, else the SQLite default.

    ``postgresql://`` URLs are pinned to the psycopg 3 driver so that a URL
    copied from psql tooling works without naming a driver.
    """
    text = url or os.environ.get(URL_ENV) or DEFAULT_URL
    parsed = make_url(text)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> str:
    """The file path of a SQLite URL (":memory:" is refused: replicas must share a file)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared; give a file path")
    return database


def tune_sqlite_connection(dbapi_connection: Any) -> None:
    """Per-connection SQLite settings shared by the write engine and raw readers."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash
    # can lose the last transactions, which the informers then re-deliver.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | None = None, *, pool_size: int = 5) -> Engine:
    """An engine for schema work and writes (``BEGIN IMMEDIATE`` on SQLite)."""
    return _engine(url, pool_size=pool_size, immediate=True)


def make_read_engine(url: str | None = None, *, pool_size: int = 5) -> Engine:
    """An engine for reads: deferred transactions on SQLite, so reads never queue behind the writer."""
    return _engine(url, pool_size=pool_size, immediate=False)


def _engine(url: str | None, *, pool_size: int, immediate: bool) -> Engine:
    resolved = resolve_url(url)
    if not is_sqlite(resolved):
        return create_engine(resolved, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    sqlite_path(resolved)
    engine = create_engine(resolved)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        if immediate:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
            dbapi_connection.isolation_level = None
        tune_sqlite_connection(dbapi_connection)

    if immediate:

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
