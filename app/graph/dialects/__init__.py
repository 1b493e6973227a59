"""One implementation per database, in the style of alembic's per-dialect ``impl`` classes.

Everything that differs between SQLite and PostgreSQL lives in
``sqlite.py`` or ``postgresql.py``: engine set-up, bulk write statements, the
request-path reader, whose clock judges the writer lease, statement time
limits and the migration lock. The rest of the code asks ``for_url`` or
``for_engine`` and never branches on the database itself.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.graph.dialects.base import DialectImpl
from app.graph.dialects.postgresql import PostgresqlImpl
from app.graph.dialects.sqlite import SqliteImpl

__all__ = ["DialectImpl", "for_engine", "for_name", "for_url"]

_IMPLS: dict[str, DialectImpl] = {impl.name: impl for impl in (SqliteImpl(), PostgresqlImpl())}


def for_name(name: str) -> DialectImpl:
    """The implementation for a SQLAlchemy backend name (``sqlite``, ``postgresql``)."""
    impl = _IMPLS.get(name)
    if impl is None:
        raise ValueError(f"unsupported database {name!r}: nodeauthz runs on SQLite or PostgreSQL")
    return impl


def for_url(url: str) -> DialectImpl:
    return for_name(make_url(url).get_backend_name())


def for_engine(engine: Engine) -> DialectImpl:
    return for_name(engine.dialect.name)
