"""Several replicas or Jobs migrating one fresh database at once: one migrates, the others wait, then see head.

Real processes (the ``nodeauthz`` and ``alembic`` console scripts) on a fresh SQLite file and a fresh
PostgreSQL database. SQLite takes turns on a lock file beside the database, PostgreSQL on an
advisory lock (``migration_lock`` in ``app.graph.dialects``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.graph.database import make_read_engine
from app.graph.migrations import head_revision, migrations_dir, schema_problem
from tests.conftest import DATABASES, PG_ADMIN_URL
from tests.servers import nodeauthz_script

ROOT = Path(__file__).resolve().parents[2]  # alembic.ini: `alembic upgrade head` from the project root
SLOW_S = 12  # longer than SQLite's busy timeout (10 s), which every writer waits on the write lock

SLOW_REVISION = '''"""A throwaway data migration that takes a while."""

import time

from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None
compatibility = "expand"


def upgrade() -> None:
    op.execute("CREATE TABLE slow_marker (x INTEGER)")
    time.sleep({seconds})


def downgrade() -> None:
    op.execute("DROP TABLE slow_marker")
'''


@pytest.fixture(params=DATABASES)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nothing has migrated yet: a SQLite path with no file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nodeauthz_migrate_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield (
        make_url(PG_ADMIN_URL)
        .set(drivername="postgresql", database=name)
        .render_as_string(hide_password=False)
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_all(commands: list[list[str]], url: str, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once, then wait for each."""
    env = {**os.environ, "NODEAUTHZ_DATABASE_URL": url}
    procs = [
        subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    done = []
    for cmd, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return done


def assert_all_succeeded(done: list[subprocess.CompletedProcess[str]]) -> None:
    for result in done:
        assert result.returncode == 0, (result.args, result.stderr)
        assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr


def schema_at(url: str) -> tuple[str | None, str | None]:
    engine = make_read_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return version, schema_problem(conn)
    finally:
        engine.dispose()


def test_many_migrators_at_once_on_a_fresh_database_all_succeed(fresh_url: str, tmp_path: Path) -> None:
    alembic = str(Path(sys.executable).parent / "alembic")
    commands = [[nodeauthz_script(), "migrate"]] * 4 + [[alembic, "upgrade", "head"]] * 4
    done = run_all(commands, fresh_url, ROOT)
    assert_all_succeeded(done)
    assert [r.stdout for r in done[:4]] == [f"schema at revision {head_revision()}\n"] * 4
    assert schema_at(fresh_url) == (head_revision(), None)


def test_migrators_wait_for_a_migration_longer_than_the_busy_timeout(fresh_url: str, tmp_path: Path) -> None:
    """A slow data migration: the others wait for it (not fail with "database is locked"), then see head."""
    root = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    slow = f"{int(head_revision()) + 1:04d}"
    (root / "versions" / f"{slow}_slow.py").write_text(
        SLOW_REVISION.format(rev=slow, down=head_revision(), seconds=SLOW_S)
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {root}\n")
    alembic = str(Path(sys.executable).parent / "alembic")
    done = run_all([[alembic, "-c", str(ini), "upgrade", "head"]] * 4, fresh_url, tmp_path)
    assert_all_succeeded(done)
    assert schema_at(fresh_url)[0] == slow
