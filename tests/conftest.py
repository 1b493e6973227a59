"""Test databases: every database-backed test runs on a real SQLite file and a real PostgreSQL server.

``NODEAUTHZ_TEST_DATABASES`` picks the engines (default ``sqlite,postgresql``);
``NODEAUTHZ_TEST_PG_URL`` points at the server (default the local one). Each
test session creates its own PostgreSQL database, migrated once with alembic;
each test starts from empty tables. An unreachable server fails the run: a
skipped half of the suite would look green.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.graph.database import make_engine
from app.graph.migrations import upgrade
from app.graph.schema import metadata
from app.graph.store import GraphStore
from tests.writers import lease_holding_store

PG_ADMIN_URL = os.environ.get("NODEAUTHZ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DATABASES = [
    d.strip() for d in os.environ.get("NODEAUTHZ_TEST_DATABASES", "sqlite,postgresql").split(",") if d
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nodeauthz_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - the message must say what to do
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc}); start it or set NODEAUTHZ_TEST_DATABASES=sqlite"
        )
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a copy of a migrated SQLite file, or emptied PostgreSQL tables."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "nodeauthz.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    except Exception:  # noqa: BLE001 - an earlier test broke the schema on purpose: rebuild it
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade(url)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> GraphStore:
    return lease_holding_store(engine)
