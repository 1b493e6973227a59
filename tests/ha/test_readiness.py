"""Readiness: the database, the schema revision, and the graph being synced (own list or shared state)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.graph.database import make_read_engine
from app.graph.fence import Fence
from app.graph.migrations import head_revision
from app.graph.write_results import SyncMark
from app.ha import readiness
from app.ha.lease import LeaseManager
from app.ha.readiness import ReadinessReport, check_readiness, check_readiness_async, required_resources
from app.k8s.feature_gates import parse_feature_gates
from app.k8s.watched_resources import RESOURCE_NAMES
from tests.clock import FakeClock
from tests.writers import fenced

RESOURCES = ("pods", "nodes")
DURATION = 10.0
SILENCE = 30.0
NEVER = (
    "never synced: no writer has completed an initial list of {} in this database "
    "(run `nodeauthz run` or `nodeauthz sync` against it)"
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reader(database_url: str) -> Iterator[Engine]:
    """What a probe uses: the read engine (plain transactions on SQLite)."""
    eng = make_read_engine(database_url)
    yield eng
    eng.dispose()


def writer_synced(
    engine: Engine, clock: FakeClock, holder: str, resources: tuple[str, ...] = RESOURCES
) -> Fence:
    """A writer takes the lease and records every resource's initial list."""
    fence = LeaseManager(engine, holder=holder, duration=DURATION, clock=clock).try_acquire()
    assert fence is not None
    store = fenced(engine, fence)
    for resource in resources:
        store.mark(SyncMark(resource, "100"))
    return fence


def check(reader: Engine, clock: FakeClock | None, self_synced: bool | None = None) -> ReadinessReport:
    return check_readiness(
        reader, required_resources=RESOURCES, self_synced=self_synced, max_writer_silence=SILENCE, clock=clock
    )


def test_writer_whose_own_initial_list_completed_is_ready(reader: Engine) -> None:
    report = check(reader, None, self_synced=True)
    assert report == ReadinessReport(True, {"database": "ok", "schema": "ok", "graph": "ok"})


def test_reader_is_not_ready_before_any_writer_existed(reader: Engine) -> None:
    report = check(reader, None)
    assert not report.ready
    assert "no writer lease row 'graph-writer'" in report.checks["writer_lease"]
    assert report.checks["sync_state"] == NEVER.format("pods, nodes")


def test_restarted_reader_is_ready_at_once_when_the_live_writer_has_synced(
    engine: Engine, reader: Engine, clock: FakeClock
) -> None:
    writer_synced(engine, clock, "a")
    report = check(reader, clock)
    assert report.ready, report.checks
    assert report.checks == {"database": "ok", "schema": "ok", "writer_lease": "ok", "sync_state": "ok"}


def test_database_clock_path_is_ready_too(engine: Engine, reader: Engine) -> None:
    fence = LeaseManager(engine, holder="a").try_acquire()
    assert fence is not None
    fenced(engine, fence).mark(SyncMark("pods", "1"))
    fenced(engine, fence).mark(SyncMark("nodes", "1"))
    assert check(reader, None).ready


def test_a_resource_without_a_sync_row_is_named(engine: Engine, reader: Engine, clock: FakeClock) -> None:
    writer_synced(engine, clock, "a", resources=("pods",))
    report = check(reader, clock)
    assert not report.ready
    assert report.checks["sync_state"] == NEVER.format("nodes")
    assert report.checks["writer_lease"] == "ok"


def test_writer_silent_too_long_makes_readers_unready(
    engine: Engine, reader: Engine, clock: FakeClock
) -> None:
    writer_synced(engine, clock, "a")
    clock.advance(DURATION + 42)
    report = check(reader, clock)
    assert not report.ready
    assert report.checks["writer_lease"].startswith("writer lease expired 42s ago (holder a, epoch 1)")
    assert report.checks["sync_state"] == "ok"


def test_hand_over_within_the_silence_allowance_keeps_readers_ready(
    engine: Engine, reader: Engine, clock: FakeClock
) -> None:
    writer_synced(engine, clock, "a")
    clock.advance(SILENCE)  # expired 20 s ago; last renewal exactly SILENCE ago
    assert check(reader, clock).ready
    clock.advance(1)
    assert not check(reader, clock).ready


def test_new_writer_has_the_allowance_to_resync(engine: Engine, reader: Engine, clock: FakeClock) -> None:
    writer_synced(engine, clock, "a")
    clock.advance(DURATION)
    b = LeaseManager(engine, holder="b", duration=DURATION, clock=clock)
    fb = b.try_acquire()
    assert fb is not None and fb.epoch == 2
    assert check(reader, clock).ready  # a's rows stand while b re-lists
    for _ in range(4):  # b stays alive but never marks anything
        clock.advance(8)
        assert b.renew(fb)
    report = check(reader, clock)
    assert not report.ready
    assert report.checks["writer_lease"] == "ok"
    assert report.checks["sync_state"] == (
        "pods last synced by a epoch 1; the current writer b epoch 2 has not synced it in 32s; "
        "nodes last synced by a epoch 1; the current writer b epoch 2 has not synced it in 32s"
    )
    store = fenced(engine, fb)
    store.mark(SyncMark("pods", "200"))
    store.mark(SyncMark("nodes", "200"))
    assert check(reader, clock).ready


def test_writer_still_listing_relies_on_the_shared_state(
    engine: Engine, reader: Engine, clock: FakeClock
) -> None:
    report = check(reader, clock, self_synced=False)
    assert not report.ready
    assert report.checks["initial_list"] == "this writer's initial list has not completed"
    writer_synced(engine, clock, "a")
    report = check(reader, clock, self_synced=False)
    assert report.ready and "initial_list" not in report.checks


@pytest.fixture
def alembic_version(database_url: str) -> Iterator[Engine]:
    """Direct access to alembic_version; restored afterwards (the PostgreSQL database is shared)."""
    eng = create_engine(database_url)
    yield eng
    with eng.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head_revision()})
    eng.dispose()


def test_schema_behind_the_code_is_not_ready(alembic_version: Engine, reader: Engine) -> None:
    with alembic_version.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": "0000"})
    report = check(reader, None, self_synced=True)
    assert not report.ready
    assert report.checks == {
        "database": "ok",
        "schema": f"database schema is at revision 0000; this version needs {head_revision()}: run `nodeauthz migrate`",
    }


def test_unmigrated_database_is_not_ready(alembic_version: Engine, reader: Engine) -> None:
    with alembic_version.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    report = check(reader, None, self_synced=True)
    assert not report.ready
    assert report.checks["schema"].startswith("database schema is not migrated (no alembic revision)")


def test_unreachable_database_is_a_report_not_an_exception(database_url: str, tmp_path: Path) -> None:
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    else:
        url = make_url(database_url).set(database="nodeauthz_no_such_database").render_as_string(False)
    eng = make_read_engine(url)
    try:
        report = check(eng, None, self_synced=True)
    finally:
        eng.dispose()
    assert not report.ready
    assert list(report.checks) == ["database"]
    assert report.checks["database"] == "unreachable: OperationalError (details in the log)"
    # The probe may be plain HTTP to anyone: no host, port, user or database name in it.
    assert "127.0.0.1" not in str(report.checks) and "nodeauthz_no_such_database" not in str(report.checks)


def test_errors_midway_are_reported_under_their_check(
    engine: Engine, reader: Engine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer_synced(engine, clock, "a")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("lease table unreadable")

    monkeypatch.setattr(readiness, "read_lease", broken)
    report = check(reader, clock)
    assert not report.ready
    assert report.checks["writer_lease"] == "error: RuntimeError (details in the log)"


def test_async_variant_gives_the_same_answer(engine: Engine, reader: Engine, clock: FakeClock) -> None:
    writer_synced(engine, clock, "a", resources=("pods",))

    async def probe() -> ReadinessReport:
        return await check_readiness_async(
            reader, required_resources=RESOURCES, self_synced=None, max_writer_silence=SILENCE, clock=clock
        )

    report = asyncio.run(probe())
    assert report == check(reader, clock)
    assert report.checks["sync_state"] == NEVER.format("nodes")


def test_probe_is_a_handful_of_statements(engine: Engine, reader: Engine, clock: FakeClock) -> None:
    from sqlalchemy import event

    writer_synced(engine, clock, "a")
    statements: list[str] = []
    event.listen(reader, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert check(reader, clock).ready
    assert len(statements) <= 6, statements


def test_node_restriction_resources_are_required_while_their_gates_are_on() -> None:
    everything = RESOURCE_NAMES
    assert set(required_resources(everything)) == {
        "pods",
        "nodes",
        "persistentvolumes",
        "volumeattachments",
        "persistentvolumeclaims",
        "csidrivers",
        "serviceaccounts",
    }
    no_audiences = parse_feature_gates("ServiceAccountNodeAudienceRestriction=false")
    assert "csidrivers" not in required_resources(everything, no_audiences)
    assert "serviceaccounts" in required_resources(everything, no_audiences)
    neither = parse_feature_gates("ServiceAccountNodeAudienceRestriction=false,PodCertificateRequest=false")
    assert required_resources(everything, neither) == (
        "pods",
        "nodes",
        "persistentvolumes",
        "volumeattachments",
    )
    # Only what this replica syncs: --resources pods,nodes requires no more.
    assert required_resources(("pods", "nodes")) == ("pods", "nodes")
