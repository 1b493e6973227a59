"""The schema's revisions: running alembic from the code, and the one check that a database is current.

Every command that touches the graph and every readiness probe asks
``schema_problem``; ``SchemaNotCurrent`` carries its answer with what to do.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from app.graph.database import resolve_url

MIGRATIONS_ENV = "NODEAUTHZ_MIGRATIONS"


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the revision this code needs; the message says what to do."""


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


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def schema_problem(conn: Connection) -> str | None:
    """None when the schema is the code's revision; else what is wrong and what to do."""
    current, needed = current_revision(conn), head_revision()
    if current == needed:
        return None
    found = f"at revision {current}" if current else "not migrated (no alembic revision)"
    return f"database schema is {found}; this version needs {needed}: run `nodeauthz migrate`"


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the schema is the code's revision (use a read engine)."""
    with engine.connect() as conn:
        problem = schema_problem(conn)
    if problem is not None:
        raise SchemaNotCurrent(problem)
