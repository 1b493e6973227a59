"""Running alembic from the code: ``nodeauthz migrate`` and the readiness check's schema test."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.graph.database import resolve_url

MIGRATIONS_ENV = "NODEAUTHZ_MIGRATIONS"


def migrations_dir() -> Path:
    """Where the alembic scripts are: $NODEAUTHZ_MIGRATIONS, the source tree, or ./migrations."""
    candidates = [
        os.environ.get(MIGRATIONS_ENV),
        str(Path(__file__).resolve().parents[2] / "migrations"),
        str(Path.cwd() / "migrations"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "env.py").is_file():
            return Path(candidate)
    raise FileNotFoundError(f"alembic migrations not found; set ${MIGRATIONS_ENV} to the migrations folder")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = resolve_url(url)
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one alembic head, found {heads}")
    return heads[0]


def current_revision_at(url: str | None = None) -> str | None:
    """The database's revision, read through a read engine (never queues behind the writer on SQLite)."""
    from app.graph.database import make_read_engine

    engine = make_read_engine(url, pool_size=1)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
