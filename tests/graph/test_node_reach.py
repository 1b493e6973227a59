"""A node's blast radius agrees with the check, object by object, and names the granting pod."""

from __future__ import annotations

from sqlalchemy import Engine, text

from app.graph.node_reach import node_reach
from app.graph.reach import has_path
from app.graph.store import GraphStore
from app.k8s.kinds import CONFIGMAP, NODE, POD, PV, PVC, SECRET, VertexKey
from tests.web.test_authorize import load_sample


def test_node_c_reads_exactly_these_objects_through_these_pods(engine: Engine, store: GraphStore) -> None:
    load_sample(store)
    with engine.connect() as conn:
        grants = node_reach(conn, "node-c", (SECRET, PV, PVC))
    db0 = VertexKey(POD, "shop", "db-0")
    assert [(g.obj, g.via) for g in grants] == [
        (VertexKey(SECRET, "shop", "db-password"), db0),
        (VertexKey(SECRET, "shop", "db-volume-key"), db0),  # secret -> pv -> pvc -> pod
        (VertexKey(PV, "", "pvc-0b1c2d3e"), db0),
        (VertexKey(PVC, "shop", "data-db-0"), db0),
    ]


def test_a_shared_configmap_is_listed_once_per_granting_pod(engine: Engine, store: GraphStore) -> None:
    load_sample(store)
    with engine.connect() as conn:
        grants = node_reach(conn, "node-c", (CONFIGMAP,))
    assert [(str(g.obj), str(g.via)) for g in grants] == [
        ("configmap kube-system/kube-proxy", "pod kube-system/kube-proxy-c2m8w"),
        ("configmap kube-system/kube-root-ca.crt", "pod kube-system/kube-proxy-c2m8w"),
        ("configmap shop/kube-root-ca.crt", "pod shop/db-0"),
    ]


def test_reach_lists_exactly_what_the_check_allows_for_every_node(engine: Engine, store: GraphStore) -> None:
    load_sample(store)
    with engine.connect() as conn:
        vertices = [
            VertexKey(*row) for row in conn.execute(text("SELECT kind, namespace, name FROM vertices"))
        ]
        nodes = [v.name for v in vertices if v.kind == NODE]
        assert len(nodes) == 3
        for node in [*nodes, "no-such-node"]:
            listed = {g.obj for g in node_reach(conn, node)}
            checked = {v for v in vertices if v.kind != NODE and has_path(conn, node, *v).found}
            assert listed == checked, node
