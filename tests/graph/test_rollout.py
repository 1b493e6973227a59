"""Rolling out a schema change with old replicas still serving (README "Upgrading").

A throwaway *expand* revision keeps this code serving and answering; a *contract* revision makes it
unready with a message saying what to do. Both built by the test in a copy of the migrations.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.graph.database import make_read_engine
from app.graph.derivation import derive
from app.graph.migrations import alembic_config, head_revision, migrations_dir, schema_problem
from app.graph.reach import has_path
from app.graph.store import GraphStore
from app.ha.readiness import check_readiness
from tests.builders import pod

REVISION = '''"""{doc}"""

from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None
compatibility = "{kind}"


def upgrade() -> None:
    {up}


def downgrade() -> None:
    {down_op}
'''


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--database-url", database_url, "migrate"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_revisions_are_numbered_and_say_whether_old_code_survives_them() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions())))  # oldest first
    assert [r.revision for r in revisions] == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    kinds = [getattr(r.module, "compatibility", None) for r in revisions]
    assert kinds[0] == "contract" and set(kinds) <= {"expand", "contract"}, kinds


@pytest.fixture
def newer_migrations(database_url: str, tmp_path: Path) -> Iterator[tuple[Config, Path]]:
    """A copy of this code's migrations that a test extends with revisions newer than the code's."""
    root = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config()
    config.set_main_option("script_location", str(root))
    config.attributes["database_url"] = database_url
    yield config, root / "versions"
    command.downgrade(config, head_revision())  # leave the shared test database at this code's head


def add_revision(versions: Path, rev: int, kind: str, up: str, down_op: str) -> str:
    name = f"{rev:04d}"
    text = REVISION.format(
        doc=f"a throwaway {kind} revision", rev=name, down=f"{rev - 1:04d}", kind=kind, up=up, down_op=down_op
    )
    (versions / f"{name}_test_{kind}.py").write_text(text)
    return name


def test_an_expand_revision_keeps_old_replicas_serving_and_a_contract_one_stops_them(
    database_url: str, engine: Engine, store: GraphStore, newer_migrations: tuple[Config, Path]
) -> None:
    config, versions = newer_migrations
    head = int(head_revision())
    expand = add_revision(
        versions, head + 1, "expand",
        up='op.add_column("objects", sa.Column("note", sa.String(64), nullable=True))',
        down_op='op.drop_column("objects", "note")',
    )  # fmt: skip
    command.upgrade(config, "head")
    reader = make_read_engine(database_url)
    try:
        with reader.connect() as conn:
            assert schema_problem(conn) is None
        assert check_readiness(reader, required_resources=(), self_synced=None).ready
        store.apply([derive(pod("web", "shop", "n1", secrets=("tls",)))])  # old code still writes
        with reader.connect() as conn:
            assert has_path(conn, "n1", "secret", "shop", "tls").found  # and answers
        # An older release's migration Job run after the newer one: nothing to do, and no traceback.
        old_job = migrate(database_url)
        assert old_job.returncode == 0 and f"newer than this version's {head_revision()}" in old_job.stdout

        contract = add_revision(versions, head + 2, "contract", up="pass", down_op="pass")
        command.upgrade(config, "head")
        report = check_readiness(reader, required_resources=(), self_synced=None)
        assert not report.ready
        assert report.checks["schema"] == (
            f"database schema is at revision {contract}, newer than this version ({head_revision()}), and needs "
            f"code at revision {contract} or newer: this replica must be replaced by the new version "
            "(do not migrate down)"
        )
        refused = migrate(database_url)
        assert refused.returncode == 2 and "must be replaced by the new version" in refused.stderr
        assert expand != contract
    finally:
        reader.dispose()
