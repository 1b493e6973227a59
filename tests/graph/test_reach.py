"""The check's edge cases: plain-edge chains, the depth bound, cycles, explain's paths (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from app.graph.derivation import DerivedObject, Edge, derive
from app.graph.explain import find_paths
from app.graph.reach import MAX_DEPTH, DepthBoundHit, Reach, has_path
from app.graph.store import GraphStore
from app.k8s.kinds import VertexKey
from tests.builders import pod, pv


def chain(length: int, *, cycle: bool = False) -> DerivedObject:
    """secret -> pv0 -> pv1 -> ... -> pvc -> pod -> node n1 as one owner's plain edges (no real object does this)."""
    hops = [VertexKey("secret", "ns", "start")] + [VertexKey("pv", "", f"pv{i}") for i in range(length)]
    hops.append(VertexKey("pvc", "ns", "claim"))
    edges = [Edge(a, b, None) for a, b in zip(hops, hops[1:], strict=False)]
    if cycle:
        edges.append(Edge(hops[2], hops[1], None))
    return DerivedObject("pv", "", "chain", "u", "1", "", tuple(sorted(set(edges))))


@pytest.fixture
def with_pod(store: GraphStore) -> GraphStore:
    store.apply([derive(pod("user", "ns", "n1", pvcs=("claim",)))])
    return store


def check(engine: Engine, node: str, kind: str, namespace: str, name: str) -> Reach:
    with engine.connect() as conn:
        return has_path(conn, node, kind, namespace, name)


def test_chain_within_the_bound_is_followed(with_pod: GraphStore, engine: Engine) -> None:
    with_pod.apply([chain(MAX_DEPTH - 2)])
    assert check(engine, "n1", "secret", "ns", "start") == Reach(found=True)
    assert check(engine, "n2", "secret", "ns", "start") == Reach(found=False)


def test_a_walk_cut_by_the_bound_says_so(with_pod: GraphStore, engine: Engine) -> None:
    with_pod.apply([chain(MAX_DEPTH + 2)])
    reach = check(engine, "n1", "secret", "ns", "start")
    assert reach == Reach(found=False, truncated=True)
    with pytest.raises(DepthBoundHit):
        reach.verdict()  # never a silent deny


def test_cycles_terminate(with_pod: GraphStore, engine: Engine) -> None:
    with_pod.apply([chain(3, cycle=True)])
    assert check(engine, "n1", "secret", "ns", "start").found
    assert not check(engine, "n2", "secret", "ns", "start").found


def test_unknown_object_or_node(with_pod: GraphStore, engine: Engine) -> None:
    assert check(engine, "n1", "secret", "ns", "nope") == Reach(found=False)
    assert check(engine, "ghost", "pvc", "ns", "claim") == Reach(found=False)


def test_explain_lists_every_path_shortest_first(store: GraphStore, engine: Engine) -> None:
    store.apply(
        derive(o)
        for o in (
            pod("a", "shop", "n1", secrets=("creds",), pvcs=("data",)),
            pod("b", "shop", "n1", secrets=("creds",)),
            pv("pv-data", ("shop", "data"), csi_secrets={"nodePublishSecretRef": ("shop", "creds")}),
        )
    )
    with engine.connect() as conn:
        paths, more = find_paths(conn, "n1", VertexKey("secret", "shop", "creds"))
        none, _ = find_paths(conn, "n2", VertexKey("secret", "shop", "creds"))
    rendered = [" -> ".join(str(v) for v in p) for p in paths]
    assert rendered == [
        "secret shop/creds -> pod shop/a -> node n1",
        "secret shop/creds -> pod shop/b -> node n1",
        "secret shop/creds -> pv pv-data -> pvc shop/data -> pod shop/a -> node n1",
    ]
    assert not more and none == []
