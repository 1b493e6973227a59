"""The schema's revisions: running alembic from the code, and the one check that a database may be served.

Every command that touches the graph and every readiness probe asks
``schema_problem``; ``SchemaNotCurrent`` carries its answer with what to do.

Rollouts (README "Upgrading"): each revision is *expand* (code of the previous revision keeps
working on it) or *contract* (it does not). After every upgrade the database records, in
``schema_window``, the oldest code revision that may serve on it: the newest contract revision
applied. Code older than the schema cannot know the newer revisions' names, so it reads that row:
revision ids are numbered (0001, 0002, ...), and it serves when its own head is not older.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, insert, inspect, select, update

from app.graph.database import resolve_url
from app.graph.schema import schema_window

WINDOW = "graph"  # the one row of schema_window


class SchemaNotCurrent(RuntimeError):
    """The database's schema is not the revision this code needs; the message says what to do."""


def migrations_dir() -> Path:
    """The alembic scripts shipped inside the package (``app/migrations``), wherever it is installed."""
    return Path(str(resources.files("app") / "migrations"))


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


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """Every revision this code ships."""
    return frozenset(s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def revision_number(revision: str) -> int:
    return int(revision)  # tests/graph/test_migrations.py keeps every revision id numeric


def window_start(script: ScriptDirectory, head: str) -> str:
    """The oldest code revision that may serve on a schema at ``head``: its newest contract revision."""
    for revision in script.walk_revisions(base="base", head=head):  # newest first
        if getattr(revision.module, "compatibility", "contract") == "contract":
            return revision.revision
    raise RuntimeError("the first revision must be a contract revision")


def record_window(conn: Connection, script: ScriptDirectory) -> None:
    """After an upgrade: write which code may serve on the schema now (migrations/env.py)."""
    head = current_revision(conn)
    if head is None or not inspect(conn).has_table(schema_window.name):
        return  # below the revision that introduced the window
    values = {"serves_from": window_start(script, head), "head": head, "updated_at": datetime.now(UTC)}
    updated = conn.execute(update(schema_window).where(schema_window.c.name == WINDOW).values(**values))
    if updated.rowcount == 0:
        conn.execute(insert(schema_window).values(name=WINDOW, **values))


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def schema_problem(conn: Connection) -> str | None:
    """None when this code may serve on the schema; else what is wrong and what to do."""
    current, head = current_revision(conn), head_revision()
    if current == head:
        return None
    if current is None:
        return f"database schema is not migrated (no alembic revision); this version needs {head}: run `nodeauthz migrate`"
    if (
        current in known_revisions()
        or not current.isdigit()
        or revision_number(current) < revision_number(head)
    ):
        return f"database schema is at revision {current}; this version needs {head}: run `nodeauthz migrate`"
    serves_from = _window(conn)
    if serves_from is not None and revision_number(serves_from) <= revision_number(head):
        return None  # a newer, expanded schema that this code still works on
    needed = f"code at revision {serves_from} or newer" if serves_from else "newer code"
    return (
        f"database schema is at revision {current}, newer than this version ({head}), and needs {needed}: "
        "this replica must be replaced by the new version (do not migrate down)"
    )


def _window(conn: Connection) -> str | None:
    if not inspect(conn).has_table(schema_window.name):
        return None
    value: str | None = conn.execute(
        select(schema_window.c.serves_from).where(schema_window.c.name == WINDOW)
    ).scalar()
    return value


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the schema is the code's revision (use a read engine)."""
    with engine.connect() as conn:
        problem = schema_problem(conn)
    if problem is not None:
        raise SchemaNotCurrent(problem)
