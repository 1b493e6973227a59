"""Writing the graph: apply and remove watched objects, each as a unit, in one transaction.

Every write of the graph lives here (the lease row is written by ``app.ha.lease``). The contract, visible in the
names: ``apply``/``delete`` open their own transaction (``BEGIN IMMEDIATE`` on
SQLite) and call ``_locked`` helpers that assume one is open.

- An object owns the edges derived from it; applying it replaces exactly those
  edges, deleting it removes them, and vertices no edge touches any more go too.
  Another object's edges are never touched (see field notes on Gardener).
- Applying an object whose derived edges, uid and node are unchanged only
  records its new resourceVersion: status churn costs one UPDATE.
- ``mark`` records the resource's resourceVersion in the same transaction as
  the writes it covers; ``fence`` refuses to commit for a writer whose lease
  epoch is stale (``app.graph.fence``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, select, tuple_

from app.graph.closure import ClosureKeeper
from app.graph.database import stream_keys
from app.graph.derivation import DerivedObject
from app.graph.dialects import for_engine
from app.graph.fence import Fence, FenceSource, check_fence_locked
from app.graph.planner_stats import PlannerStats
from app.graph.schema import edges, objects, sync_state, unstored_objects, vertices
from app.graph.write_results import ApplyResult, SyncMark
from app.k8s.kinds import CONFIGMAP, NODE, SERVICEACCOUNT, VertexKey

CHUNK = 500  # keys per IN (...) list: 1,500 parameters, well under every driver's limit
VERTEX_CACHE_LIMIT = 100_000
CACHED_KINDS = frozenset({NODE, CONFIGMAP, SERVICEACCOUNT})
APPLY_BATCH = 2_000  # objects per batch of statements inside one transaction


@dataclass(frozen=True)
class _ObjectRow:
    id: int
    fingerprint: str


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GraphStore:
    """The single writer's handle on the graph (one per process)."""

    def __init__(self, engine: Engine, *, fence: FenceSource) -> None:
        """``fence`` is asked at the start of every write transaction; it raises LeaseLost when this
        process is not the writer, so there is no way to write without a current fence."""
        self.engine = engine
        self.fence = fence
        self._dialect = for_engine(engine)
        # Whether unstored_objects may have rows: only then do writes clear them (None: not looked yet).
        self._has_unstored: bool | None = None
        # Vertex ids known to be committed; cleared on any failed transaction.
        self._vertex_ids: dict[VertexKey, int] = {}
        # The PV-secret closure, recomputed for the edges each transaction changes (app.graph.closure).
        self._closure = ClosureKeeper()
        # PostgreSQL's statistics, kept up with the edges this writer inserts (app.graph.planner_stats).
        self._planner = PlannerStats(self._dialect)
        # One write transaction at a time per store: the closure keeper's touched set and the vertex-id
        # cache belong to the transaction in progress (two at once on PostgreSQL could refresh each
        # other's closure rows away). Re-entrant: a write may set an object aside inside another.
        self._write_lock = threading.RLock()

    # -- public API: each call is one transaction -------------------------------------------------

    def apply(self, items: Iterable[DerivedObject], *, mark: SyncMark | None = None) -> ApplyResult:
        latest: dict[VertexKey, DerivedObject] = {}
        for obj in items:
            latest[obj.key] = obj  # the last version of an object in a batch wins
        pending = list(latest.values())
        result = ApplyResult()
        with self._transaction() as (conn, fence):
            self._clear_unstored_locked(conn, list(latest))
            # Bounded statements even for a 150k-object list: one transaction, many batches.
            for batch in _chunks(pending, APPLY_BATCH):
                result.add(self._apply_locked(conn, batch))
            if mark is not None:
                self._mark_locked(conn, mark, fence)
        return result

    def delete(self, keys: Iterable[VertexKey], *, mark: SyncMark | None = None) -> ApplyResult:
        """Remove objects (keyed by owner kind, namespace, name) and every edge they own."""
        with self._transaction() as (conn, fence):
            wanted = list(dict.fromkeys(keys))
            self._clear_unstored_locked(conn, wanted)
            rows = self._existing_locked(conn, wanted)
            result = ApplyResult(deleted=len(rows))
            result.object_delta.subtract(k.kind for k in rows)
            _, removed = self._remove_locked(conn, [r.id for r in rows.values()], drop_objects=True)
            result.edge_delta = -removed
            if mark is not None:
                self._mark_locked(conn, mark, fence)
        return result

    def mark(self, mark: SyncMark) -> None:
        with self._transaction() as (conn, fence):
            self._mark_locked(conn, mark, fence)

    def set_aside(self, key: VertexKey, resource_version: str, reason: str) -> ApplyResult:
        """An object the database refused: drop what is stored of it and record why, in one transaction.

        Dropping its stored version is the safe side: an update that cannot be stored must not leave
        the previous version's edges granting access.
        """
        with self._transaction() as (conn, _fence):
            rows = self._existing_locked(conn, [key])
            result = ApplyResult(deleted=len(rows))
            result.object_delta.subtract(k.kind for k in rows)
            _, removed = self._remove_locked(conn, [r.id for r in rows.values()], drop_objects=True)
            result.edge_delta = -removed
            values = {
                "resource_version": resource_version[:64],
                "reason": reason[:1024],
                "set_aside_at": datetime.now(UTC),
            }
            stmt = self._dialect.insert(unstored_objects).values(
                kind=key.kind, namespace=key.namespace, name=key.name[:253], **values
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[
                        unstored_objects.c.kind,
                        unstored_objects.c.namespace,
                        unstored_objects.c.name,
                    ],
                    set_=values,
                )
            )
        self._has_unstored = True
        return result

    def forget_cached_ids(self) -> None:
        """Drop cached vertex ids: call when (re)gaining the writer role, another writer may have moved on."""
        self._vertex_ids.clear()
        self._has_unstored = None
        self._closure.forget()
        self._planner.forget()

    def suspend_closure(self, reason: str) -> None:
        """Stop keeping the PV-secret closure (``app.graph.closure.ClosureKeeper.suspend``)."""
        with self._write_lock:
            self._closure.suspend(reason)

    def resume_closure(self, reason: str) -> None:
        """The next write transaction rebuilds the closure, once nothing else keeps it suspended."""
        with self._write_lock:
            self._closure.resume(reason)

    def owned_keys(self, kind: str) -> set[VertexKey]:
        """Every stored object of one owner kind."""
        return set(self.stream_owned_keys(kind))

    def stream_owned_keys(self, kind: str) -> Iterator[VertexKey]:
        """The same, streamed (what a re-list reconciles against, a million at a time)."""
        return stream_keys(self.engine, objects, kind)

    def resource_version(self, resource: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(sync_state.c.resource_version).where(sync_state.c.resource == resource)
            ).scalar()

    # -- transaction and fencing -----------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def _clear_unstored_locked(self, conn: Connection, keys: Sequence[VertexKey]) -> None:
        """An object stored or deleted now is no longer set aside (a no-op while none is)."""
        if self._has_unstored is None:
            self._has_unstored = conn.execute(select(unstored_objects.c.kind).limit(1)).first() is not None
        if not self._has_unstored or not keys:
            return
        t = unstored_objects.c
        for chunk in _chunks(keys):
            conn.execute(delete(unstored_objects).where(tuple_(t.kind, t.namespace, t.name).in_(list(chunk))))

    def _mark_locked(self, conn: Connection, mark: SyncMark, fence: Fence) -> None:
        values = {
            "resource": mark.resource,
            "resource_version": mark.resource_version,
            "writer": fence.holder,
            "epoch": fence.epoch,
            "synced_at": datetime.now(UTC),
        }
        stmt = self._dialect.insert(sync_state).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sync_state.c.resource],
            set_={k: v for k, v in values.items() if k != "resource"},
        )
        conn.execute(stmt)

    # -- the work, inside a transaction ----------------------------------------------------------

    def _existing_locked(self, conn: Connection, keys: Sequence[VertexKey]) -> dict[VertexKey, Any]:
        found: dict[VertexKey, Any] = {}
        columns = "t.id, t.kind, t.namespace, t.name, t.fingerprint"
        for row in self._dialect.select_by_keys(conn, "objects", columns, keys):
            found[VertexKey(row[1], row[2], row[3])] = _ObjectRow(row[0], row[4])
        return found

    def _apply_locked(self, conn: Connection, items: Sequence[DerivedObject]) -> ApplyResult:
        existing = self._existing_locked(conn, [o.key for o in items])
        unchanged: list[tuple[int, str]] = []
        replaced: list[DerivedObject] = []
        fresh: list[DerivedObject] = []
        for obj in items:
            row = existing.get(obj.key)
            if row is None:
                fresh.append(obj)
            elif row.fingerprint == obj.fingerprint:
                unchanged.append((row.id, obj.resource_version))
            else:
                replaced.append(obj)
        if unchanged:
            self._dialect.update_versions(conn, unchanged)
        owner_ids: dict[VertexKey, int] = {}
        edges_removed = 0
        if replaced:
            ids = [existing[o.key].id for o in replaced]
            candidates, edges_removed = self._remove_locked(conn, ids, drop_objects=False, collect_only=True)
            self._dialect.update_objects(
                conn,
                [
                    (existing[o.key].id, o.uid, o.resource_version, o.node_name, o.fingerprint)
                    for o in replaced
                ],
            )
            owner_ids.update({o.key: existing[o.key].id for o in replaced})
        else:
            candidates = set()
        if fresh:
            # Insert, then one keyed read-back of the ids: RETURNING in parameter order would force
            # SQLite into one statement per row.
            self._dialect.insert_objects(
                conn,
                [
                    (o.kind, o.namespace, o.name, o.uid, o.resource_version, o.node_name, o.fingerprint)
                    for o in fresh
                ],
            )
            inserted = self._existing_locked(conn, [o.key for o in fresh if o.edges])
            owner_ids.update({key: row.id for key, row in inserted.items()})
        added = self._insert_edges_locked(conn, [o for o in (*replaced, *fresh) if o.edges], owner_ids)
        if candidates:
            self._collect_garbage_locked(conn, candidates)
        return ApplyResult(
            written=len(replaced) + len(fresh),
            unchanged=len(unchanged),
            object_delta=Counter(o.kind for o in fresh),
            edge_delta=added - edges_removed,
        )

    def _insert_edges_locked(
        self, conn: Connection, items: Sequence[DerivedObject], owner_ids: dict[VertexKey, int]
    ) -> int:
        """Insert the edges of these owners (whose old edges are gone); returns how many."""
        if not items:
            return 0
        needed: set[VertexKey] = set()
        for obj in items:
            for e in obj.edges:
                needed.add(e.source)
                needed.add(e.target)
                if e.node is not None and e.node != obj.node_name:
                    needed.add(VertexKey(NODE, "", e.node))
            if obj.node_name:
                needed.add(VertexKey(NODE, "", obj.node_name))
        ids = self._vertex_ids_locked(conn, needed)
        node_ids: dict[str, int] = {}
        rows: dict[tuple[int, int, int], int | None] = {}
        for obj in items:
            owner = owner_ids[obj.key]
            for e in obj.edges:
                node_id = None
                if e.node is not None:
                    node_id = node_ids.get(e.node)
                    if node_id is None:
                        node_id = node_ids[e.node] = ids[VertexKey(NODE, "", e.node)]
                rows[(owner, ids[e.source], ids[e.target])] = node_id
        self._dialect.insert_edges(conn, [(o, f, t, n) for (o, f, t), n in rows.items()])
        self._closure.touched(f for _, f, _ in rows)
        self._planner.edges_inserted_locked(conn, len(rows))
        return len(rows)

    def _vertex_ids_locked(self, conn: Connection, keys: set[VertexKey]) -> dict[VertexKey, int]:
        cache = self._vertex_ids
        result = {k: cache[k] for k in keys if k in cache}
        missing = [k for k in keys if k not in result]
        if not missing:
            return result
        result.update(self._dialect.insert_vertices(conn, missing))
        unknown = [k for k in missing if k not in result]
        if unknown:
            columns = "t.id, t.kind, t.namespace, t.name"
            for row in self._dialect.select_by_keys(conn, "vertices", columns, unknown):
                result[VertexKey(row[1], row[2], row[3])] = row[0]
        # Only shared vertices are worth remembering (nodes, namespace-wide configmaps, service
        # accounts); a pod's own secret is looked up once. Safe: a rolled-back transaction clears it.
        cache.update((k, v) for k, v in result.items() if k.kind in CACHED_KINDS)
        return result

    def _remove_locked(
        self, conn: Connection, owner_ids: Sequence[int], *, drop_objects: bool, collect_only: bool = False
    ) -> tuple[set[int], int]:
        """Delete the edges of these owners; return the vertex ids they touched (clean-up candidates)
        and how many edges went."""
        candidates: set[int] = set()
        from_ids: set[int] = set()
        removed = 0
        for chunk in _chunks(owner_ids):
            for f, t in conn.execute(
                select(edges.c.from_id, edges.c.to_id).where(edges.c.owner_id.in_(chunk))
            ):
                candidates.add(f)
                candidates.add(t)
                from_ids.add(f)
            removed += conn.execute(delete(edges).where(edges.c.owner_id.in_(chunk))).rowcount
            if drop_objects:
                conn.execute(delete(objects).where(objects.c.id.in_(chunk)))
        self._closure.touched(from_ids)
        if not collect_only and candidates:
            self._collect_garbage_locked(conn, candidates)
        return candidates, removed

    def _collect_garbage_locked(self, conn: Connection, candidates: set[int]) -> None:
        """Remove vertices that no edge touches any more (upstream removes orphaned neighbours)."""
        e_from = edges.alias("e_from")
        e_to = edges.alias("e_to")
        for chunk in _chunks(sorted(candidates)):
            stmt = (
                delete(vertices)
                .where(vertices.c.id.in_(chunk))
                .where(~exists().where(e_from.c.from_id == vertices.c.id))
                .where(~exists().where(e_to.c.to_id == vertices.c.id))
                .returning(vertices.c.kind, vertices.c.namespace, vertices.c.name)
            )
            for row in conn.execute(stmt):
                self._vertex_ids.pop(VertexKey(row.kind, row.namespace, row.name), None)


class _Transaction:
    """One write transaction; on failure the vertex-id cache is dropped (its ids may be rolled back)."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.conn: Connection | None = None
        self.fence: Fence | None = None

    def __enter__(self) -> tuple[Connection, Fence]:
        self.store._write_lock.acquire()
        try:
            fence = self.fence = self.store.fence()  # raises LeaseLost when this process is not the writer
            self.conn = self.store.engine.connect()
        except BaseException:
            self.store._write_lock.release()
            raise
        self.conn.begin()
        try:
            check_fence_locked(self.conn, fence)
        except BaseException:
            # __exit__ does not run when __enter__ raises: give the locks back now.
            self.conn.rollback()
            self.conn.close()
            self.store._write_lock.release()
            raise
        return self.conn, fence

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.conn is not None and self.fence is not None
        try:
            if exc_type is None:
                self.store._closure.refresh_locked(self.conn, self.fence)
                self.conn.commit()
            else:
                self.conn.rollback()
                self.store._vertex_ids.clear()
                self.store._closure.forget()
                self.store._planner.forget()
        except BaseException:
            self.store._vertex_ids.clear()
            self.store._closure.forget()
            self.store._planner.forget()
            raise
        finally:
            self.conn.close()
            if len(self.store._vertex_ids) > VERTEX_CACHE_LIMIT:
                self.store._vertex_ids.clear()
            self.store._write_lock.release()
