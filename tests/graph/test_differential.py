"""Differential property test: the SQL store against a small in-memory reference graph.

Random sequences of pod / PV / VolumeAttachment / ResourceSlice adds, updates
and deletes go to both; after every step, reachability must agree for every
(node, object) pair. The reference follows upstream's graph literally: each
owner's edge set, and a depth-first walk that follows an edge carrying a node
only when that node is the one asked about.

Every decision is read three times: through the webhook's own reader
(``app.graph.readers.open_reader``: raw sqlite3 or asyncpg, the request path),
through ``has_path`` on SQLAlchemy (the CLI's check), both of which answer a PV's
secret from the write-time closure (``app.graph.closure``), and through the pure
recursive walk (``WALK_SQL``); all must match the reference. After every step the
stored closure must also equal one rebuilt from scratch, and be the one readers
trust (kept by the writer's current term), so the closure path is what is tested.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, select

from app.graph.closure import rebuild_closure_locked
from app.graph.derivation import DerivedObject, derive
from app.graph.reach import WALK_SQL, has_path
from app.graph.readers import open_reader
from app.graph.schema import edges, objects, reach_closure, reach_closure_state, vertices, writer_lease
from app.graph.store import GraphStore
from app.k8s.kinds import VertexKey
from tests.builders import pod, pv, resource_slice, volume_attachment

NODES = ("n0", "n1", "n2")
NAMESPACES = ("a", "b")
SECRETS = ("s0", "s1", "s2")
CLAIMS = ("c0", "c1")


class ReferenceGraph:
    def __init__(self) -> None:
        self.owned: dict[VertexKey, DerivedObject] = {}

    def apply(self, obj: DerivedObject) -> None:
        self.owned[obj.key] = obj

    def delete(self, key: VertexKey) -> None:
        self.owned.pop(key, None)

    def reach(self, node: str, start: VertexKey) -> bool:
        out: dict[VertexKey, list[tuple[VertexKey, str | None]]] = {}
        for obj in self.owned.values():
            for e in obj.edges:
                out.setdefault(e.source, []).append((e.target, e.node))
        seen, stack = {start}, [start]
        while stack:
            v = stack.pop()
            for target, dest in out.get(v, []):
                if dest is not None:
                    if dest == node:
                        return True
                    continue  # upstream does not follow destination edges to other nodes
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False


names = st.sampled_from
pods = st.builds(
    lambda name, ns, node, secrets, claims, mirror, uid: pod(
        name, ns, node, uid=f"{ns}-{name}-{uid}", secrets=tuple(secrets), pvcs=tuple(claims), mirror=mirror
    ),
    names(("p0", "p1", "p2", "p3")),
    names(NAMESPACES),
    names(("", *NODES)),
    st.lists(names(SECRETS), max_size=2),
    st.lists(names(CLAIMS), max_size=2),
    st.booleans(),
    st.integers(0, 1),
)
pvs = st.builds(
    lambda name, ns, claim, secret, secret_ns: pv(
        name, (ns, claim) if claim else None, csi_secrets={"nodePublishSecretRef": (secret_ns, secret)}
    ),
    names(("v0", "v1", "v2")),
    names(NAMESPACES),
    names((None, *CLAIMS)),
    names(SECRETS),
    names(NAMESPACES),
)
vas = st.builds(volume_attachment, names(("va0", "va1")), names(NODES))
slices = st.builds(resource_slice, names(("rs0", "rs1")), names(NODES))
steps = st.lists(
    # PVs and pods weigh double: PV secrets' closure changes with PV, claim binding and pod alike.
    st.tuples(st.sampled_from(("apply", "apply", "delete")), st.one_of(pods, pvs, pods, pvs, vas, slices)),
    min_size=1,
    max_size=12,
)

TARGETS = [
    *(VertexKey("secret", ns, s) for ns, s in itertools.product(NAMESPACES, SECRETS)),
    *(VertexKey("pvc", ns, c) for ns, c in itertools.product(NAMESPACES, CLAIMS)),
    *(VertexKey("pod", ns, p) for ns, p in itertools.product(NAMESPACES, ("p0", "p1", "p2", "p3"))),
    *(VertexKey("pv", "", v) for v in ("v0", "v1", "v2")),
    *(VertexKey("volumeattachment", "", v) for v in ("va0", "va1")),
    *(VertexKey("resourceslice", "", v) for v in ("rs0", "rs1")),
]


def _clear(store: GraphStore) -> None:
    """Empty the graph and its closure (the writer's lease and sync marks stay) and the store's caches."""
    with store.engine.begin() as conn:
        for table in (edges, objects, vertices, reach_closure, reach_closure_state):
            conn.execute(delete(table))
    store.forget_cached_ids()


def _closure_rows(conn: Connection) -> set[tuple[int, int]]:
    return {(r.source_id, r.node_id) for r in conn.execute(select(reach_closure))}


def _assert_closure_current(store: GraphStore) -> None:
    """The stored closure is the one a rebuild gives, and readers trust it (its term holds the lease)."""
    fence = store.fence()
    with store.engine.connect() as conn:  # rebuilt, compared, rolled back
        stored = _closure_rows(conn)
        state = conn.execute(select(reach_closure_state)).one()
        lease = conn.execute(select(writer_lease).where(writer_lease.c.name == state.lease)).one()
        assert (state.lease, state.holder, state.epoch) == (fence.lease, fence.holder, fence.epoch)
        assert (lease.holder, lease.epoch) == (state.holder, state.epoch)
        rebuild_closure_locked(conn, fence)
        rebuilt = _closure_rows(conn)
        conn.rollback()
    assert stored == rebuilt


async def _run_steps(database_url: str, store: GraphStore, steps: list[tuple[str, dict[str, Any]]]) -> None:
    ref = ReferenceGraph()
    # A generous deadline: this tests answers, and a loaded machine can take a second to connect.
    reader = await open_reader(database_url, pool_size=1, timeout=30)
    try:
        for action, raw in steps:
            obj = derive(raw)
            if action == "apply":
                store.apply([obj])
                ref.apply(obj)
            else:
                store.delete([obj.key])
                ref.delete(obj.key)
            _assert_closure_current(store)
            with store.engine.connect() as conn:
                for node, target in itertools.product(NODES, TARGETS):
                    expected = ref.reach(node, target)
                    where = (action, obj.key, node, target)
                    got = await reader.reach(node, target.kind, target.namespace, target.name)
                    assert not got.truncated, ("reader", *where)
                    assert got.found == expected, ("reader", *where)
                    got = has_path(conn, node, target.kind, target.namespace, target.name)
                    assert not got.truncated, ("has_path", *where)
                    assert got.found == expected, ("has_path", *where)
                    got = has_path(conn, node, target.kind, target.namespace, target.name, sql=WALK_SQL)
                    assert not got.truncated, ("walk", *where)
                    assert got.found == expected, ("walk", *where)
    finally:
        await reader.close()


# print_blob: a failure also prints the @reproduce_failure line that replays it exactly.
@settings(
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=steps)
def test_store_matches_reference_graph(
    database_url: str, store: GraphStore, steps: list[tuple[str, dict[str, Any]]]
) -> None:
    _clear(store)
    # One event loop per example: the reader is opened and closed inside it.
    asyncio.run(_run_steps(database_url, store, steps))
