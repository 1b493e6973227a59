"""Differential property test: the SQL store against a small in-memory reference graph.

Random sequences of pod / PV / VolumeAttachment / ResourceSlice adds, updates
and deletes go to both; after every step, reachability must agree for every
(node, object) pair. The reference follows upstream's graph literally: each
owner's edge set, and a depth-first walk that follows an edge carrying a node
only when that node is the one asked about.

Every decision is read four times: through the webhook's own reader
(``app.graph.readers.open_reader``: raw sqlite3 or asyncpg, the request path), one by one and
all at once (on PostgreSQL, one statement for the checks that wait together),
through ``has_path`` on SQLAlchemy (the CLI's check), each of which answers a PV's
secret from the write-time closure (``app.graph.closure``), and through the pure
recursive walk (``WALK_SQL``); all must match the reference. After every step the
stored closure must also equal one rebuilt from scratch, and be the one readers
trust (kept by the writer's current term), so the closure path is what is tested.

A second property runs random re-lists (pages, then deletions by set difference) through the
bulk path (``app.graph.bulk_load``, what list pages and ``load`` use) and through the per-object
path, and requires the same objects, vertices and edges rows after every step; on the bulk path
the closure must equal a rebuild after every page, and every decision read as above must match
the reference after every re-list.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, select

from app.graph.bulk_load import bulk_apply, kind_is_empty
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


def step_both(store: GraphStore, ref: ReferenceGraph, action: str, raw: dict[str, Any]) -> DerivedObject:
    """One step ("apply" or "delete" an object) on the store and on the reference graph."""
    obj = derive(raw)
    if action == "apply":
        store.apply([obj])
        ref.apply(obj)
    else:
        store.delete([obj.key])
        ref.delete(obj.key)
    return obj


async def _run_steps(database_url: str, store: GraphStore, steps: list[tuple[str, dict[str, Any]]]) -> None:
    ref = ReferenceGraph()
    # A generous deadline: this tests answers, and a loaded machine can take a second to connect.
    reader = await open_reader(database_url, pool_size=1, timeout=30)
    try:
        for action, raw in steps:
            obj = step_both(store, ref, action, raw)
            _assert_closure_current(store)
            await _assert_reads_match(store, reader, ref, (action, obj.key))
    finally:
        await reader.close()


async def _assert_reads_match(store: GraphStore, reader: Any, ref: ReferenceGraph, step: Any) -> None:
    """Every (node, object) decision, read three ways, is the reference's."""
    with store.engine.connect() as conn:
        for node, target in itertools.product(NODES, TARGETS):
            expected = ref.reach(node, target)
            where = (step, node, target)
            got = await reader.reach(node, target.kind, target.namespace, target.name)
            assert not got.truncated, ("reader", *where)
            assert got.found == expected, ("reader", *where)
            got = has_path(conn, node, target.kind, target.namespace, target.name)
            assert not got.truncated, ("has_path", *where)
            assert got.found == expected, ("has_path", *where)
            got = has_path(conn, node, target.kind, target.namespace, target.name, sql=WALK_SQL)
            assert not got.truncated, ("walk", *where)
            assert got.found == expected, ("walk", *where)
    # All at once, as concurrent reviews ask: PostgreSQL's reader answers checks that wait together
    # with one statement (app.graph.coalesce, BATCH_REACH_SQL); SQLite's answers each inline.
    pairs = list(itertools.product(NODES, TARGETS))
    together = await asyncio.gather(*(reader.reach(node, t.kind, t.namespace, t.name) for node, t in pairs))
    for (node, target), got in zip(pairs, together, strict=True):
        assert (got.found, got.truncated) == (ref.reach(node, target), False), (
            "together",
            step,
            node,
            target,
        )


# print_blob: a failure also prints the @reproduce_failure line that replays it exactly.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(steps=steps)
def test_store_matches_reference_graph(
    database_url: str, store: GraphStore, steps: list[tuple[str, dict[str, Any]]]
) -> None:
    _clear(store)
    # One event loop per example: the reader is opened and closed inside it.
    asyncio.run(_run_steps(database_url, store, steps))


# -- the bulk path (list pages, `load`) against the per-object path --------------------------------

# Re-lists: each is what a list returns (one version per object), written in pages, then the stored
# objects it did not return are deleted, as the sync worker does.
# Each re-list may suspend the closure's upkeep as a big initial list does (``SUSPEND_ABOVE``): readers
# walk meanwhile, and the list's last transaction rebuilds every row.
relists = st.lists(
    st.tuples(st.booleans(), st.lists(st.one_of(pods, pvs, vas, slices), max_size=10)), min_size=1, max_size=4
)
OWNER_KINDS = ("pod", "pv", "volumeattachment", "resourceslice")
PAGE = 3


def _graph_rows(store: GraphStore) -> tuple[set[tuple[Any, ...]], ...]:
    """Every row of the graph by key (ids differ between the paths; what they name must not)."""
    o, f, t, n = objects.alias("o"), vertices.alias("f"), vertices.alias("t"), vertices.alias("n")
    with store.engine.connect() as conn:
        object_rows = set(conn.execute(select(*(c for c in objects.c if c.name != "id"))))
        vertex_rows = set(conn.execute(select(vertices.c.kind, vertices.c.namespace, vertices.c.name)))
        edge_rows = set(
            conn.execute(
                select(o.c.kind, o.c.namespace, o.c.name, f.c.kind, f.c.namespace, f.c.name)
                .add_columns(t.c.kind, t.c.namespace, t.c.name, n.c.name)
                .select_from(
                    edges.join(o, o.c.id == edges.c.owner_id)
                    .join(f, f.c.id == edges.c.from_id)
                    .join(t, t.c.id == edges.c.to_id)
                    .outerjoin(n, n.c.id == edges.c.node_id)
                )
            )
        )
    return object_rows, vertex_rows, edge_rows


def _relist(
    store: GraphStore, raw: list[dict[str, Any]], bulk: bool, ref: ReferenceGraph, suspend: bool = False
) -> None:
    listed = {o.key: o for o in map(derive, raw)}  # a list holds one version of each object
    items = list(listed.values())
    empty = all(kind_is_empty(store, kind) for kind in OWNER_KINDS)
    if suspend:
        store.suspend_closure("relist")
    for start in range(0, len(items), PAGE):
        page = items[start : start + PAGE]
        if bulk:
            bulk_apply(store, page, assume_new=empty)  # a first list into an empty graph looks nothing up
            if suspend:  # not kept: readers must not trust the rows
                with store.engine.connect() as conn:
                    assert conn.execute(select(reach_closure_state)).first() is None
            else:
                _assert_closure_current(store)  # each page's transaction keeps the closure current
        else:
            store.apply(page)
    stale = set().union(*(store.owned_keys(kind) for kind in OWNER_KINDS)) - set(listed)
    if suspend:
        store.resume_closure("relist")
    store.delete(sorted(stale))
    _assert_closure_current(store)
    for key in stale:
        ref.delete(key)
    for obj in items:
        ref.apply(obj)


async def _relists(
    database_url: str, store: GraphStore, relists: list[tuple[bool, list[dict[str, Any]]]], bulk: bool
) -> list[tuple[set[tuple[Any, ...]], ...]]:
    """Run the re-lists one path; the graph's rows after each. On the bulk path, check every decision."""
    _clear(store)
    ref = ReferenceGraph()
    reader = await open_reader(database_url, pool_size=1, timeout=30) if bulk else None
    snapshots = []
    try:
        for step, (suspend, raw) in enumerate(relists):
            _relist(store, raw, bulk, ref, suspend=bulk and suspend)
            snapshots.append(_graph_rows(store))
            if reader is not None:
                await _assert_reads_match(store, reader, ref, ("relist", step))
    finally:
        if reader is not None:
            await reader.close()
    return snapshots


@SETTINGS
@given(relists=relists)
def test_bulk_path_writes_the_rows_the_per_object_path_writes(
    database_url: str, store: GraphStore, relists: list[tuple[bool, list[dict[str, Any]]]]
) -> None:
    per_object = asyncio.run(_relists(database_url, store, relists, bulk=False))
    bulk_rows = asyncio.run(_relists(database_url, store, relists, bulk=True))
    for step, (expected, got) in enumerate(zip(per_object, bulk_rows, strict=True)):
        for table, want, have in zip(("objects", "vertices", "edges"), expected, got, strict=True):
            assert have == want, (step, table, want ^ have)
