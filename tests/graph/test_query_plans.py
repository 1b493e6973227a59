"""Pin the hot queries' plans: each must use the index it was designed for, on both databases.

A plan that drifts to a table scan would still answer correctly, only 1000x
slower at 150k pods; this test catches that at review time.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from app.graph.derivation import derive
from app.graph.dialects.sqlite import keyed_select_sql
from app.graph.reach import PK_LOOKUP_SQL, REACH_SQL, reach_params
from app.graph.store import GraphStore
from tests.builders import pod, pv

GC_PROBE_SQL = (
    "SELECT id FROM vertices WHERE id = :id "
    "AND NOT EXISTS (SELECT 1 FROM edges WHERE from_id = vertices.id) "
    "AND NOT EXISTS (SELECT 1 FROM edges WHERE to_id = vertices.id)"
)


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


def _plan(engine: Engine, sql: str, params: dict[str, object]) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), params).all()
            return "\n".join(str(r[-1]) for r in rows)
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))


def test_reach_query_probes_the_edge_index(store: GraphStore, engine: Engine) -> None:
    _populate(store, engine)
    for args in [("n1", "configmap", "ns1", "kube-root-ca.crt"), ("n1", "secret", "csi", "x1")]:
        plan = _plan(engine, REACH_SQL, reach_params(*args))
        if engine.dialect.name == "sqlite":
            assert (
                plan.count(
                    "USING COVERING INDEX sqlite_autoindex_vertices_1 (kind=? AND namespace=? AND name=?)"
                )
                == 5
            )
            # direct probe, plain-edge probe, recursive step, per-vertex node probe, depth-bound probe
            assert (
                plan.count("USING COVERING INDEX ix_edges_from_id_node_id_to_id (from_id=? AND node_id=?)")
                == 4
            )
            assert "SEARCH e USING INDEX ix_edges_from_id_node_id_to_id (from_id=? AND node_id=?)" in plan
            assert "SCAN e" not in plan and "SCAN v" not in plan and "SCAN n" not in plan
        else:
            assert plan.count("Index Scan using uq_vertices_kind_namespace_name") == 5
            assert "Index Cond: ((from_id = v.id) AND (node_id = $" in plan  # the direct, node-filtered probe
            assert "Index Cond: ((from_id = w_1.id) AND (node_id = $" in plan  # the same probe along the walk
            assert plan.count("Index Only Scan using ix_edges_from_id_node_id_to_id") == 5
            assert "Seq Scan" not in plan


def test_pk_lookup_baseline_uses_the_unique_index(store: GraphStore, engine: Engine) -> None:
    _populate(store, engine)
    plan = _plan(engine, PK_LOOKUP_SQL, {"kind": "secret", "namespace": "ns1", "name": "s1"})
    if engine.dialect.name == "sqlite":
        assert "USING COVERING INDEX sqlite_autoindex_vertices_1" in plan
    else:
        assert "uq_vertices_kind_namespace_name" in plan and "Seq Scan" not in plan


def test_vertex_cleanup_probes_both_edge_indexes(store: GraphStore, engine: Engine) -> None:
    _populate(store, engine)
    plan = _plan(engine, GC_PROBE_SQL, {"id": 1})
    if engine.dialect.name == "sqlite":
        assert "ix_edges_from_id_node_id_to_id (from_id=?)" in plan
        assert "ix_edges_to_id_from_id (to_id=?)" in plan
    else:
        assert "ix_edges_from_id_node_id_to_id" in plan and "ix_edges_to_id_from_id" in plan
        assert "Seq Scan" not in plan


def test_bulk_key_lookup_joins_through_the_unique_index(store: GraphStore, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL looks keys up through unnest(), not a VALUES join")
    _populate(store, engine)
    sql = keyed_select_sql("vertices", "t.id", 3)
    params = ("secret", "ns1", "s1", "pod", "ns2", "p2", "node", "", "n3")
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
            assert (
                "SEARCH t USING COVERING INDEX sqlite_autoindex_vertices_1 (kind=? AND namespace=? AND name=?)"
                in plan
            )
            assert "SCAN t" not in plan
        else:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
            assert "uq_vertices_kind_namespace_name" in plan and "Seq Scan on vertices" not in plan
        assert len(conn.exec_driver_sql(sql, params).all()) == 3
