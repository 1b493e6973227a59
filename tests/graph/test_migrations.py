"""The alembic revisions build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from app.graph.migrations import head_revision, schema_problem
from app.graph.schema import metadata


def test_migrated_schema_matches_the_declared_one(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_a_migrated_database_is_current(engine: Engine) -> None:
    with engine.connect() as conn:
        assert schema_problem(conn) is None
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
