"""Alembic runtime: the URL comes from NODEAUTHZ_DATABASE_URL (or the caller), never from alembic.ini.

Replicas that run ``alembic upgrade head`` at once would race: each database's
``migration_lock`` (``app.graph.dialects``) makes them take turns.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.graph.database import make_engine, resolve_url
from app.graph.dialects import for_name
from app.graph.migrations import record_window
from app.graph.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    # Which code may serve on the schema now: read by replicas older than it (README "Upgrading").
    with connection.begin_nested() if connection.in_transaction() else connection.begin():
        record_window(connection, context.script)


def _with_migration_lock(connection: Connection) -> None:
    with for_name(connection.dialect.name).migration_lock(connection):
        _run(connection)


def run_migrations_online() -> None:
    existing = config.attributes.get("connection")
    if existing is not None:
        _with_migration_lock(existing)
        return
    url = config.attributes.get("database_url") or resolve_url(None)
    engine = make_engine(url, create=True)  # the one place a SQLite file may be created
    try:
        with engine.connect() as connection:
            _with_migration_lock(connection)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=resolve_url(config.attributes.get("database_url")), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
