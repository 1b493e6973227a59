"""The bulk write path: whole pages or files of objects in one write transaction, keys resolved in SQL.

Used where many objects arrive at once: a list page of the initial sync or a
re-list (``app.sync``), and ``nodeauthz load``. Same guarantees as
``GraphStore.apply`` (each object's rows replaced as a unit inside a fenced
transaction, the sync mark in the same transaction, orphaned vertices removed),
fewer round trips: the object rows, the vertices and the edges of a whole batch
are three bulk statements (SQLite ``executemany``, PostgreSQL ``unnest``), and
the edges name their owner and ends by (kind, namespace, name), resolved to ids
by the database inside the statement, so no id is read back into Python.

Which objects to write is decided as in the per-object path: an object whose
fingerprint is unchanged only gets its resourceVersion; a changed one loses its
old edges first. ``assume_new`` skips the look-up for a caller that knows none
of the batch is stored (an initial list into a kind with no objects); were it
wrong, the object insert fails on the unique key and nothing of the batch commits.

Beside the graph rows, in the same transaction: a page's NodeRestriction facts
(``PageRows.facts``, what ``load`` carries), and the write-time closure
(``app.graph.closure``): the source of every edge inserted or removed is reported
to the store's ``ClosureKeeper``, which refreshes (or, past its threshold, once
rebuilds) the closure when the transaction commits; a stale row would be a wrong allow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from app.graph.admission_facts import FactWriter
from app.graph.bulk_rows import Key, PageRows, object_key, page_rows
from app.graph.derivation import DerivedObject
from app.graph.fence import Fence
from app.graph.schema import objects
from app.graph.store import CACHED_KINDS, GraphStore
from app.graph.write_results import ApplyResult, SyncMark
from app.k8s.kinds import VertexKey


def kind_is_empty(store: GraphStore, kind: str) -> bool:
    """No object of this owner kind is stored (an initial list may then ``assume_new``)."""
    with store.engine.connect() as conn:
        return conn.execute(select(objects.c.id).where(objects.c.kind == kind).limit(1)).first() is None


class BulkLoad:
    """One fenced write transaction that takes batches: ``with BulkLoad(store) as bulk: bulk.apply(...)``.

    Commits on a clean exit, rolls everything back on an exception (all or nothing).
    """

    def __init__(self, store: GraphStore, *, assume_new: bool = False) -> None:
        self.store = store
        self.assume_new = assume_new
        self._dialect = store._dialect
        self._tx = store._transaction()
        self._conn: Connection | None = None
        self._fence: Fence | None = None
        self._facts = FactWriter(store.engine, fence=store.fence)

    def __enter__(self) -> BulkLoad:
        self._conn, self._fence = self._tx.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._conn = None
        self._tx.__exit__(exc_type, exc, tb)

    def apply(self, items: Iterable[DerivedObject]) -> ApplyResult:
        return self.apply_rows(page_rows(items))

    def mark(self, mark: SyncMark) -> None:
        assert self._conn is not None and self._fence is not None, "outside the transaction"
        self.store._mark_locked(self._conn, mark, self._fence)

    def apply_rows(self, page: PageRows) -> ApplyResult:
        conn = self._conn
        assert conn is not None, "outside the transaction"
        dialect, store = self._dialect, self.store
        keys = [object_key(r) for r in page.objects]
        self._facts.write_locked(conn, page.facts)
        store._clear_unstored_locked(conn, keys)
        existing = {} if self.assume_new else store._existing_locked(conn, keys)
        owner_ids: list[int | None] = [None] * len(keys)  # set for the objects (re)written
        unchanged: list[tuple[int, str]] = []
        fresh: list[int] = []
        replaced: list[tuple[int, int]] = []
        for i, key in enumerate(keys):
            found = existing.get(key)
            if found is None:
                fresh.append(i)
            elif found.fingerprint == page.objects[i][6]:
                unchanged.append((found.id, page.objects[i][4]))
            else:
                replaced.append((i, found.id))
        if unchanged:
            dialect.update_versions(conn, unchanged)
        candidates: set[int] = set()
        removed = 0
        if replaced:
            ids = [oid for _, oid in replaced]
            candidates, removed = store._remove_locked(conn, ids, drop_objects=False, collect_only=True)
            rows = [(oid, *page.objects[i][3:]) for i, oid in replaced]  # id, uid, rv, node, fingerprint
            dialect.update_objects(conn, rows)
            for i, oid in replaced:
                owner_ids[i] = oid
        if fresh:
            new_ids = dialect.insert_new_objects(conn, [page.objects[i] for i in fresh])
            for i, oid in zip(fresh, new_ids, strict=True):
                owner_ids[i] = oid
        added = self._insert_edges(conn, page, owner_ids, every=not unchanged)
        if candidates:
            store._collect_garbage_locked(conn, candidates)
        return ApplyResult(
            written=len(fresh) + len(replaced),
            unchanged=len(unchanged),
            object_delta=Counter(page.objects[i][0] for i in fresh),
            edge_delta=added - removed,
        )

    def _insert_edges(
        self, conn: Connection, page: PageRows, owner_ids: list[int | None], every: bool
    ) -> int:
        """The edges of the (re)written objects (``every``: all of the page's), their vertices first."""
        edges = page.edges if every else [e for e in page.edges if owner_ids[e[0]] is not None]
        if not edges:
            return 0
        needed: set[int] = set()
        for _, src, dst, node in edges:
            needed.add(src)
            needed.add(dst)
            needed.add(node)
        needed.update(v for i, v in page.anchors if owner_ids[i] is not None)
        needed.discard(-1)
        vid = self._vertex_ids(conn, [page.vertices[v] for v in needed])
        ids: dict[int, int | None] = {v: vid[page.vertices[v]] for v in needed}
        ids[-1] = None
        rows = [(owner_ids[o], ids[s], ids[t], ids[n]) for o, s, t, n in edges]
        self._dialect.insert_edges(conn, rows)  # type: ignore[arg-type]  # every id is set
        self.store._closure.touched(vid[page.vertices[v]] for v in {src for _, src, _, _ in edges})
        self.store._planner.edges_inserted_locked(conn, len(rows))
        return len(edges)

    def _vertex_ids(self, conn: Connection, keys: list[Key]) -> dict[Key, int]:
        """Ids for these vertices, inserting the missing ones (shared ones come from the store's cache)."""
        cache = self.store._vertex_ids
        ids: dict[Key, int] = {}
        missing: list[VertexKey] = []
        for key in keys:
            known = cache.get(key)  # type: ignore[call-overload]  # a tuple equal to the VertexKey
            if known is None:
                missing.append(VertexKey(*key))
            else:
                ids[key] = known
        if not missing:
            return ids
        for row in self._dialect.select_by_keys(
            conn, "vertices", "t.id, t.kind, t.namespace, t.name", missing
        ):
            ids[VertexKey(row[1], row[2], row[3])] = row[0]
        new = sorted(k for k in missing if k not in ids)
        if new:
            ids.update(zip(new, self._dialect.insert_new_vertices(conn, new), strict=True))
        cache.update((k, ids[k]) for k in missing if k.kind in CACHED_KINDS)
        return ids


def bulk_apply(
    store: GraphStore,
    items: Iterable[DerivedObject] | PageRows,
    *,
    mark: SyncMark | None = None,
    assume_new: bool = False,
) -> ApplyResult:
    """One batch (e.g. a list page) in its own transaction, with the sync mark when given."""
    page = items if isinstance(items, PageRows) else page_rows(items)
    with BulkLoad(store, assume_new=assume_new) as bulk:
        result = bulk.apply_rows(page)
        if mark is not None:
            bulk.mark(mark)
    return result
