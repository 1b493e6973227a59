"""Alembic runtime: the URL comes from NODEAUTHZ_DATABASE_URL (or the caller), never from alembic.ini.

On PostgreSQL, replicas that run ``alembic upgrade head`` at once would race:
a session-level advisory lock (not a transaction-level one, which an
``autocommit_block()`` would release) serialises them, with a bounded wait.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from app.graph.database import make_engine, resolve_url
from app.graph.schema import metadata

MIGRATION_LOCK_KEY = 0x6E6F6465617574  # "nodeaut": the advisory lock id for migrations
MIGRATION_LOCK_TIMEOUT_S = 120

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


def _with_migration_lock(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        _run(connection)
        return
    # Bounded wait: a stuck migration elsewhere gives a clear error, not a hung rollout.
    connection.execute(text(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT_S}s'"))
    try:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    except Exception as exc:
        raise RuntimeError(
            f"another replica has held the migration lock for over {MIGRATION_LOCK_TIMEOUT_S}s; "
            "is a migration stuck?"
        ) from exc
    connection.execute(text("SET lock_timeout = 0"))
    connection.commit()
    try:
        _run(connection)
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()


def run_migrations_online() -> None:
    existing = config.attributes.get("connection")
    if existing is not None:
        _with_migration_lock(existing)
        return
    url = config.attributes.get("database_url") or resolve_url(None)
    engine = make_engine(url)
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
