"""A graph filled faster than autoanalyze looks is still planned from real statistics (PostgreSQL).

Without them the closure keeper's reverse walk (``edges.to_id IN`` 500 ids, as a prepared
statement) scanned every edge: ~1 s a statement at 800,000 edges, and an initial sync of 150,000
pods took many times its old time. The shared test server runs with autovacuum off, which is the
extreme of what a fast initial sync meets in production (autoanalyze looks about once a minute).
Each test gets a database of its own: statistics outlive TRUNCATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app.graph.bulk_load import BulkLoad, bulk_apply
from app.graph.bulk_rows import page_rows
from app.graph.database import make_engine
from app.graph.derivation import DerivedObject, derive
from app.graph.migrations import upgrade
from app.graph.planner_stats import FLOOR_EDGES
from app.graph.store import GraphStore
from tests.builders import pod, pv
from tests.conftest import DATABASES, PG_ADMIN_URL
from tests.writers import lease_holding_store

pytestmark = pytest.mark.skipif("postgresql" not in DATABASES, reason="PostgreSQL only: SQLite plans without")

PAGE = 250


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    """A migrated database no ANALYZE has ever seen."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nodeauthz_stats_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(url)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pages(count: int) -> Iterator[list[DerivedObject]]:
    """A sync's list pages: pods with a secret, a configmap and a claim each, and their PVs."""
    for start in range(0, count, PAGE):
        page = []
        for i in range(start, start + PAGE):
            page.append(
                derive(
                    pod(
                        f"p{i}",
                        f"ns{i % 20}",
                        f"n{i % 40}",
                        secrets=(f"s{i}",),
                        configmaps=("cm",),
                        pvcs=(f"c{i}",),
                    )
                )
            )
            page.append(
                derive(
                    pv(
                        f"v{i}",
                        (f"ns{i % 20}", f"c{i}"),
                        csi_secrets={"nodePublishSecretRef": ("csi", f"x{i}")},
                    )
                )
            )
        yield page


def _edge_stats(engine: Engine) -> tuple[float, int, bool]:
    """(edges as the planner counts them, edges really stored, whether to_id has column statistics)."""
    with engine.connect() as conn:
        estimated = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'edges'")).scalar_one()
        stored = conn.execute(text("SELECT count(*) FROM edges")).scalar_one()
        column = conn.execute(
            text("SELECT count(*) FROM pg_stats WHERE tablename = 'edges' AND attname = 'to_id'")
        ).scalar_one()
    return float(estimated), int(stored), column > 0


def _reverse_walk_plan(engine: Engine) -> str:
    """The closure keeper's reverse walk as psycopg runs it after five calls: a generic prepared plan."""
    params = ", ".join(f"${i}::BIGINT" for i in range(1, 501))
    values = ", ".join(str(i * 7) for i in range(1, 501))
    with engine.connect() as conn:
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        walk = f"SELECT DISTINCT edges.from_id FROM edges WHERE edges.to_id IN ({params}) AND edges.node_id IS NULL"  # noqa: S608 - placeholders only
        conn.execute(text("PREPARE reverse_walk AS " + walk))
        return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN EXECUTE reverse_walk({values})")))


def test_a_sync_into_an_empty_database_leaves_the_planner_real_statistics(fresh_engine: Engine) -> None:
    store = lease_holding_store(fresh_engine)
    for page in _pages(6_000):
        bulk_apply(store, page)
    estimated, stored, has_column_stats = _edge_stats(fresh_engine)
    assert has_column_stats, "no ANALYZE ran: the planner guesses every selectivity"
    assert stored / 2 <= estimated <= stored, f"planner counts {estimated:.0f} edges of {stored}"
    plan = _reverse_walk_plan(fresh_engine)
    assert "ix_edges_to_id_from_id" in plan and "Seq Scan" not in plan, plan


def test_a_file_loaded_in_one_transaction_is_planned_from_its_own_rows(fresh_engine: Engine) -> None:
    """``load`` writes a whole file in one transaction: ANALYZE inside it counts its uncommitted rows."""
    store = lease_holding_store(fresh_engine)
    with BulkLoad(store, assume_new=True) as bulk:
        for page in _pages(4_000):
            bulk.apply_rows(page_rows(page))
    _, stored, has_column_stats = _edge_stats(fresh_engine)
    assert has_column_stats and stored > FLOOR_EDGES
    assert "Seq Scan" not in _reverse_walk_plan(fresh_engine)


def test_a_rolled_back_write_takes_its_statistics_with_it(fresh_engine: Engine) -> None:
    store = lease_holding_store(fresh_engine)
    with pytest.raises(RuntimeError), BulkLoad(store, assume_new=True) as bulk:
        for page in _pages(3_000):
            bulk.apply_rows(page_rows(page))
        raise RuntimeError("the list failed half-way")
    assert _edge_stats(fresh_engine)[1:] == (0, False)  # (reltuples is not transactional)
    # The store reads the statistics again rather than trusting an ANALYZE that was rolled back.
    for page in _pages(3_000):
        bulk_apply(store, page)
    assert _edge_stats(fresh_engine)[2]


def test_the_writer_does_not_analyze_a_graph_the_statistics_already_know(fresh_engine: Engine) -> None:
    store = lease_holding_store(fresh_engine)
    for page in _pages(6_000):
        bulk_apply(store, page)
    analyzed = store._planner.analyzed
    again = GraphStore(fresh_engine, fence=store.fence)  # a restarted writer
    for page in _pages(500):  # re-applies of known objects: few new edges
        bulk_apply(again, page)
    assert analyzed >= 1 and again._planner.analyzed == 0
