"""Database URLs and engines. What differs between databases lives in ``app.graph.dialects``."""

from __future__ import annotations

import os
from collections.abc import Iterator

from sqlalchemy import Engine, Table, select
from sqlalchemy.engine import make_url

from app.graph.dialects import for_url
from app.k8s.kinds import VertexKey

DEFAULT_URL = "sqlite:///nodeauthz.db"
URL_ENV = "NODEAUTHZ_DATABASE_URL"


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


def make_engine(url: str | None = None, *, pool_size: int = 5, create: bool = False) -> Engine:
    """An engine for schema work and writes (``BEGIN IMMEDIATE`` on SQLite).

    Only migrations pass ``create``: anything else on a missing SQLite file is an error.
    """
    resolved = resolve_url(url)
    return for_url(resolved).create_engine(resolved, pool_size=pool_size, immediate=True, create=create)


def make_read_engine(url: str | None = None, *, pool_size: int = 5) -> Engine:
    """An engine for reads: deferred transactions on SQLite, so reads never queue behind the writer."""
    resolved = resolve_url(url)
    return for_url(resolved).create_engine(resolved, pool_size=pool_size, immediate=False)


def is_sqlite(url: str) -> bool:
    """For tools that must pick a database-specific path themselves (the benchmarks)."""
    return make_url(url).get_backend_name() == "sqlite"


STREAM_ROWS = 10_000  # rows per fetch when streaming keys


def stream_keys(engine: Engine, table: Table, kind: str) -> Iterator[VertexKey]:
    """The (kind, namespace, name) keys of ``kind`` in ``table``, streamed: a re-list reconciles a
    million of them without holding them all."""
    stmt = select(table.c.namespace, table.c.name).where(table.c.kind == kind)
    with engine.connect() as conn:
        for ns, name in conn.execution_options(yield_per=STREAM_ROWS).execute(stmt):
            yield VertexKey(kind, ns, name)
