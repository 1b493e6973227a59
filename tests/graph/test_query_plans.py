"""Pin the hot queries' plans: each must use the index it was designed for, on both databases.

A plan that drifts to a table scan would still answer correctly, only 1000x
slower at 150k pods; this test catches that at review time.

Every plan is of a statement the code really runs, with the parameters it ran
with: the store's writes are recorded off the engine (``before_cursor_execute``)
while ``GraphStore.apply``/``delete`` run, then explained; the check is
``REACH_SQL`` rendered for the raw driver exactly as the webhook's readers
render it, and explained on that driver. A test that records no such statement
fails: a refactor that stops running it must not pass vacuously.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Engine, event, text

from app.graph.bulk_load import bulk_apply
from app.graph.derivation import derive
from app.graph.dialects.postgresql import READER_SERVER_SETTINGS, asyncpg_dsn
from app.graph.dialects.sqlite import sqlite_path
from app.graph.reach import (
    BATCH_REACH_SQL,
    PK_LOOKUP_SQL,
    REACH_SQL,
    batch_reach_params,
    reach_params,
    render,
)
from app.graph.store import GraphStore
from app.k8s.kinds import VertexKey
from tests.builders import pod, pv

Sent = tuple[str, Any]  # a statement as the driver received it, and its parameters


def _populate(store: GraphStore, engine: Engine) -> None:
    pods = [
        derive(
            pod(
                f"p{i}",
                f"ns{i % 20}",
                f"n{i % 50}",
                secrets=(f"s{i}",),
                configmaps=("kube-root-ca.crt",),
                pvcs=(f"c{i}",),
            )
        )
        for i in range(3000)
    ]
    pvs = [
        derive(pv(f"v{i}", (f"ns{i % 20}", f"c{i}"), csi_secrets={"nodePublishSecretRef": ("csi", f"x{i}")}))
        for i in range(3000)
    ]
    store.apply(pods + pvs)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


@contextmanager
def _recording(engine: Engine) -> Iterator[list[Sent]]:
    """Every single statement the engine sends to its driver inside the block (executemany aside)."""
    sent: list[Sent] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        if not executemany:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _matching(sent: Sequence[Sent], pattern: str) -> list[Sent]:
    found = [(sql, params) for sql, params in sent if re.search(pattern, sql, re.DOTALL)]
    ran = "\n".join(sql for sql, _ in sent)
    assert found, f"the store ran no statement matching {pattern!r}; it ran:\n{ran}"
    return found


def _explain_sent(engine: Engine, sql: str, params: Any) -> str:
    """The plan of a recorded statement for its recorded parameters; nothing is executed or committed."""
    with engine.connect() as conn:  # closed without commit: rolled back
        if engine.dialect.name == "sqlite":
            return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
        # EXPLAIN without ANALYZE: a DELETE is planned, not run.
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))


def _plan(engine: Engine, sql: str, params: dict[str, object]) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
            return "\n".join(str(r[-1]) for r in rows)
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))


def _literal(value: object) -> str:
    if isinstance(value, list):
        return f"ARRAY[{', '.join(map(_literal, value))}]::text[]"
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


async def _postgres_reach_plans(database_url: str, params: dict[str, object]) -> list[str]:
    sql, order = render(REACH_SQL, "numeric")  # as PostgresReader renders it
    values = [params[k] for k in order]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        custom = await conn.fetch("EXPLAIN " + sql, *values)
        # asyncpg prepares the check once per connection, and after five runs PostgreSQL may
        # switch a prepared statement to its generic plan (planned without the values): pin that too.
        await conn.execute("PREPARE reach_check AS " + sql)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = await conn.fetch(f"EXPLAIN EXECUTE reach_check({', '.join(map(_literal, values))})")
    finally:
        await conn.close()
    return ["\n".join(r[0] for r in rows) for rows in (custom, generic)]


def _reader_reach_plans(database_url: str, engine: Engine, params: dict[str, object]) -> list[str]:
    """Plans of the check as the webhook's reader sends it: the raw driver, its placeholders, its values."""
    if engine.dialect.name == "sqlite":
        # As SqliteReader sends it: REACH_SQL's named parameters, bound from a mapping.
        with closing(sqlite3.connect(sqlite_path(database_url))) as conn:
            rows = conn.execute("EXPLAIN QUERY PLAN " + REACH_SQL, params).fetchall()
        return ["\n".join(str(r[-1]) for r in rows)]
    return asyncio.run(_postgres_reach_plans(database_url, params))


def _pg_index_probe(index: str, table: str) -> str:
    return rf"(Index Scan|Index Only Scan) using {index} on {table}\b|Bitmap Index Scan on {index}\b"


def test_reach_query_probes_the_edge_index(store: GraphStore, engine: Engine, database_url: str) -> None:
    _populate(store, engine)
    for args in [("n1", "configmap", "ns1", "kube-root-ca.crt"), ("n1", "secret", "csi", "x1")]:
        plans = _reader_reach_plans(database_url, engine, reach_params(*args))
        assert plans
        for plan in plans:
            if engine.dialect.name == "sqlite":
                # The object and the node once each; the walk's own start and node probe.
                assert (
                    plan.count(
                        "USING COVERING INDEX sqlite_autoindex_vertices_1 (kind=? AND namespace=? AND name=?)"
                    )
                    == 4
                )
                # direct probe, plain-edge probe, recursive step, per-vertex node probe, depth-bound probe
                probes = re.findall(r"^SEARCH \w+ USING (?:COVERING )?INDEX ix_edges_from_id_node_id_to_id "
                                    r"\(from_id=\? AND node_id=\?\)$", plan, re.MULTILINE)  # fmt: skip
                assert len(probes) == 5, plan
                # A PV's secret: one probe of the closure by (object, node), and one for the depth mark.
                assert (
                    plan.count(
                        "SEARCH c USING COVERING INDEX sqlite_autoindex_reach_closure_1 (source_id=? AND node_id=?)"
                    )
                    == 2
                )
                # Only the one-row tables (closure state, writer lease) and the walk's own rows are scanned.
                assert not re.search(r"^SCAN (?!s$|l$|w$|CONSTANT ROW$)", plan, re.MULTILINE), plan
            else:
                assert plan.count("using uq_vertices_kind_namespace_name") == 4, plan
                # the direct, node-filtered probe; the same probe along the walk
                assert re.search(
                    r"Index Cond: \(\(from_id = v(_\d+)?\.id\) AND \(node_id = n(_\d+)?\.id\)", plan
                ), plan
                assert re.search(r"Index Cond: \(\(from_id = w(_\d+)?\.id\) AND \(node_id = \$", plan), plan
                assert plan.count("Index Only Scan using ix_edges_from_id_node_id_to_id") == 5, plan
                # A PV's secret: one probe of the closure by (object, node), and one for the depth mark.
                assert plan.count("Index Only Scan using pk_reach_closure on reach_closure") == 2, plan
                assert re.search(
                    r"Index Cond: \(\(source_id = v(_\d+)?\.id\) AND \(node_id = n(_\d+)?\.id\)", plan
                ), plan
                assert not re.search(r"Seq Scan on (?!reach_closure_state\b|writer_lease\b)", plan), plan


def test_batched_checks_probe_the_same_indexes(store: GraphStore, engine: Engine, database_url: str) -> None:
    """PostgreSQL's statement for checks that wait together: per check, the single check's probes."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite answers each check alone")
    _populate(store, engine)
    checks = [("n1", "configmap", "ns1", "kube-root-ca.crt"), ("n1", "secret", "csi", "x1")]
    params = batch_reach_params(checks)
    sql, order = render(BATCH_REACH_SQL, "numeric")  # as PostgresReader renders it

    async def generic_plan() -> str:
        # The reader's connections plan once, for any values (READER_SERVER_SETTINGS).
        conn = await asyncpg.connect(asyncpg_dsn(database_url), server_settings=READER_SERVER_SETTINGS)
        try:
            await conn.execute("PREPARE batch_check AS " + sql)
            values = ", ".join(map(_literal, (params[k] for k in order)))
            rows = await conn.fetch(f"EXPLAIN EXECUTE batch_check({values})")
            return "\n".join(r[0] for r in rows)
        finally:
            await conn.close()

    plan = asyncio.run(generic_plan())
    assert "Function Scan on q" in plan, plan  # the arrays, unnested once
    assert plan.count("using uq_vertices_kind_namespace_name") == 4, plan
    assert re.search(r"Index Cond: \(\(from_id = v(_\d+)?\.id\) AND \(node_id = n(_\d+)?\.id\)", plan), plan
    assert plan.count("Index Only Scan using ix_edges_from_id_node_id_to_id") == 5, plan
    assert plan.count("Index Only Scan using pk_reach_closure on reach_closure") == 2, plan
    assert not re.search(r"Seq Scan on (?!reach_closure_state\b|writer_lease\b)", plan), plan


def test_pk_lookup_baseline_uses_the_unique_index(store: GraphStore, engine: Engine) -> None:
    _populate(store, engine)
    plan = _plan(engine, PK_LOOKUP_SQL, {"kind": "secret", "namespace": "ns1", "name": "s1"})
    if engine.dialect.name == "sqlite":
        assert "USING COVERING INDEX sqlite_autoindex_vertices_1" in plan
    else:
        assert "uq_vertices_kind_namespace_name" in plan and "Seq Scan" not in plan


@pytest.mark.parametrize("writer", ["apply", "bulk"])
@pytest.mark.parametrize("table", ["objects", "vertices"])
def test_keyed_lookup_joins_through_the_unique_index(
    store: GraphStore, engine: Engine, table: str, writer: str
) -> None:
    _populate(store, engine)
    # One watch event (or a list page on the bulk path): a new pod whose secret and claim are already
    # in the graph (their vertices are read back by key), and whose object row is looked up by key;
    # on the bulk path also a changed pod (looked up, its old edges replaced) and a brand-new secret.
    new = derive(pod("web", "ns1", "n1", secrets=("s1",), configmaps=("kube-root-ca.crt",), pvcs=("c1",)))
    with _recording(engine) as sent:
        if writer == "apply":
            store.apply([new])
        else:
            changed = derive(pod("p2", "ns2", "n2", secrets=("brand-new",), pvcs=("c2",)))
            assert bulk_apply(store, [new, changed]).written == 2
    for sql, params in _matching(sent, rf"^SELECT\b.*\b(FROM|JOIN) {table}\b"):
        plan = _explain_sent(engine, sql, params)
        if sql.startswith("SELECT max(id)"):  # SQLite's bulk path picks ids: the rowid's last entry
            assert plan == f"SEARCH {table}", plan
            continue
        if engine.dialect.name == "sqlite":
            # SQLite: a join from a VALUES list (keyed_select_sql).
            assert re.search(
                rf"^SEARCH t USING (COVERING )?INDEX sqlite_autoindex_{table}_1 "
                r"\(kind=\? AND namespace=\? AND name=\?\)$",
                plan,
                re.MULTILINE,
            ), plan
            assert not re.search(r"^SCAN t\b", plan, re.MULTILINE), plan
        else:
            # PostgreSQL: a join from unnest() of one array per key column.
            assert "Function Scan on k" in plan, plan
            assert re.search(_pg_index_probe(f"uq_{table}_kind_namespace_name", f"{table} t"), plan), plan
            assert f"Seq Scan on {table}" not in plan, plan


def test_vertex_cleanup_probes_both_edge_indexes(store: GraphStore, engine: Engine) -> None:
    _populate(store, engine)
    # Both ways vertices lose their last edge: an object deleted, an object updated to drop a volume.
    with _recording(engine) as sent:
        assert store.delete([VertexKey("pod", "ns1", "p1")]).deleted == 1
        changed = pod("p2", "ns2", "n2", configmaps=("kube-root-ca.crt",), pvcs=("c2",))  # secret s2 dropped
        assert store.apply([derive(changed)]).written == 1
    cleanups = _matching(sent, r"^DELETE FROM vertices\b")
    assert len(cleanups) == 2
    for sql, params in cleanups:
        plan = _explain_sent(engine, sql, params)
        if engine.dialect.name == "sqlite":
            # The NOT EXISTS probes (and the foreign-key checks on edges a vertex delete implies).
            assert re.search(
                r"^SEARCH \w+ USING (COVERING )?INDEX ix_edges_from_id_node_id_to_id \(from_id=\?\)$",
                plan,
                re.MULTILINE,
            ), plan
            assert re.search(
                r"^SEARCH \w+ USING (COVERING )?INDEX ix_edges_to_id_from_id \(to_id=\?\)$",
                plan,
                re.MULTILINE,
            ), plan
            assert not re.search(r"^SCAN\b", plan, re.MULTILINE), plan
        else:
            assert re.search(_pg_index_probe("ix_edges_from_id_node_id_to_id", "edges"), plan), plan
            assert re.search(_pg_index_probe("ix_edges_to_id_from_id", "edges"), plan), plan
            assert "Seq Scan" not in plan, plan
