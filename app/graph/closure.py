"""The write-time closure of plain-edge walks: which nodes a PV's secret (or a PV) leads to.

A secret used by a PV reaches a node only through secret -> pv -> pvc -> pod -> node: plain edges
(owned by the PV), then an edge into a pod on the node (owned by the pod). The check would walk
that with the recursive CTE on every request. Instead the writer stores the walk's answer,
``reach_closure(source_id, node_id)``: for every vertex with plain out-edges, each node its walk
(depth 1..``MAX_DEPTH``) reaches through an edge carrying that node, and ``node_id = 0`` when the
walk is cut at the depth bound. The check is then one probe (``app.graph.reach``).

Ownership: a row depends on the PV (its secret refs and claimRef) and on the pods using the claim
(their volumes and node). Rather than owners, the rows are recomputed from the edges: any write
that adds or removes an edge out of vertex X recomputes the rows of every vertex whose walk can
pass X (a reverse walk over plain edges from X, bounded like the forward one), in the same
transaction. That covers a PV's new secret or claim, a rebind, a pod's volumes or node, deletes,
and vertex clean-up, whether the write is one object or a bulk page: callers report the
``from_id`` of every edge they add or remove (``ClosureKeeper.touched``) and call
``refresh_locked`` before commit.

Stale rows would be wrong allows, so readers trust them only while the writer term that keeps
them holds the lease: ``reach_closure_state`` records (lease, holder, epoch), and the check joins
it with ``writer_lease``. Code that predates the closure (a rollout's old writer, or anything
writing edges some other way) writes under its own epoch, so the rows stop counting the moment it
takes the lease; readers walk instead. A writer that finds the state naming another term rebuilds
every row in its first transaction and records its own term there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, delete, select, text, update

from app.graph.fence import Fence
from app.graph.reach import MAX_DEPTH
from app.graph.schema import edges, reach_closure, reach_closure_state

STATE_NAME = "plain-walks"  # the one row of reach_closure_state
TRUNCATED = 0  # node_id of the row that says "this walk hit the depth bound"
CHUNK = 500  # ids per IN (...) list
# Above this many touched vertices one rebuild (a scan of the plain edges) beats the keyed walks.
REBUILD_ABOVE = 20_000
# A list into an empty kind past this many objects stops the upkeep until its end, then rebuilds once:
# page by page, each page's walks reached the namespace's shared CSI secrets and re-walked all their
# PVs, so an initial sync of 150,000 pods grew quadratically (writer CPU 7.4 s at 60,000 objects,
# 100 s at 300,000). Readers walk instead meanwhile (the state row is gone): slower, never wrong.
SUSPEND_ABOVE = 20_000

# The walk of REACH_SQL, from many sources at once, keeping what it reaches per source.
_INSERT_SQL = """
WITH RECURSIVE walk(source_id, id, depth) AS (
    SELECT e.from_id, e.from_id, 0 FROM edges e WHERE e.node_id IS NULL {seed}
  UNION
    SELECT w.source_id, e.to_id, w.depth + 1 FROM walk w
      JOIN edges e ON e.from_id = w.id AND e.node_id IS NULL
     WHERE w.depth < :max_depth
)
INSERT INTO reach_closure (source_id, node_id)
SELECT w.source_id, e.node_id FROM walk w JOIN edges e ON e.from_id = w.id
 WHERE w.depth > 0 AND e.node_id IS NOT NULL
UNION
SELECT w.source_id, {truncated} FROM walk w
 WHERE w.depth = :max_depth AND EXISTS (SELECT 1 FROM edges e WHERE e.from_id = w.id AND e.node_id IS NULL)
"""

_INSERT_FOR = text(_INSERT_SQL.format(seed="AND e.from_id IN :ids", truncated=TRUNCATED)).bindparams(
    bindparam("ids", expanding=True)
)
_INSERT_ALL = text(_INSERT_SQL.format(seed="", truncated=TRUNCATED))


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def walk_sources_locked(conn: Connection, from_ids: Iterable[int]) -> set[int]:
    """Every vertex whose walk may pass one of ``from_ids``: themselves and their plain ancestors."""
    found = set(from_ids)
    frontier = sorted(found)
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        parents: set[int] = set()
        for chunk in _chunks(frontier):
            stmt = (
                select(edges.c.from_id).where(edges.c.to_id.in_(chunk), edges.c.node_id.is_(None)).distinct()
            )
            parents.update(conn.execute(stmt).scalars())
        frontier = sorted(parents - found)
        found |= parents
    return found


def refresh_closure_locked(conn: Connection, from_ids: Iterable[int]) -> None:
    """Recompute the rows of every walk that may pass a vertex whose out-edges changed (in a write txn)."""
    sources = sorted(walk_sources_locked(conn, from_ids))
    for chunk in _chunks(sources):
        conn.execute(delete(reach_closure).where(reach_closure.c.source_id.in_(chunk)))
        conn.execute(_INSERT_FOR, {"ids": list(chunk), "max_depth": MAX_DEPTH})


def rebuild_closure_locked(conn: Connection, fence: Fence) -> None:
    """Every row from scratch, and the state naming ``fence``'s term as the one keeping them."""
    conn.execute(delete(reach_closure))
    conn.execute(_INSERT_ALL, {"max_depth": MAX_DEPTH})
    conn.execute(delete(reach_closure_state))
    conn.execute(
        reach_closure_state.insert().values(
            name=STATE_NAME,
            lease=fence.lease,
            holder=fence.holder,
            epoch=fence.epoch,
            rebuilt_at=datetime.now(UTC),
        )
    )


def hand_over_locked(conn: Connection, lease: str, from_epoch: int, holder: str, epoch: int) -> bool:
    """In a takeover's transaction: if the outgoing term (``from_epoch``) kept the rows, the new term
    keeps them from here; True if it did. Without this, every new term rebuilt every row in its first
    write: seconds at 150,000 pods (new pods' events queued behind it), a minute at a million.

    Sound because the state names a term only if that term's every commit kept the rows (its first
    rebuilt or was handed them), and once the takeover commits that term can commit nothing more (the
    fence); a term that did not keep them (older code, a suspension) left another epoch or no row,
    so nothing is handed over and the new writer rebuilds.
    """
    s = reach_closure_state.c
    moved = conn.execute(
        update(reach_closure_state)
        .where(s.name == STATE_NAME, s.lease == lease, s.epoch == from_epoch)
        .values(holder=holder, epoch=epoch)
    )
    return moved.rowcount == 1


def forget_closure_locked(conn: Connection, lease: str) -> None:
    """Nobody keeps the rows any more (readers walk until a writer rebuilds them)."""
    conn.execute(delete(reach_closure_state).where(reach_closure_state.c.lease == lease))


def kept_by_locked(conn: Connection) -> tuple[str, str, int] | None:
    """(lease, holder, epoch) of the term the rows are current for, or None."""
    s = reach_closure_state.c
    row = conn.execute(select(s.lease, s.holder, s.epoch).where(s.name == STATE_NAME)).first()
    return None if row is None else (row.lease, row.holder, row.epoch)


class ClosureKeeper:
    """The store's side: collects the vertices whose out-edges a transaction changed, refreshes at commit."""

    def __init__(self) -> None:
        self._touched: set[int] = set()
        # More than REBUILD_ABOVE touched (a bulk load's one transaction): the ids are no longer kept.
        self._rebuild = False
        self._current: Fence | None = None  # the term whose state row this process has seen committed
        self._suspended: set[str] = set()  # why the rows are not kept now (see suspend)
        self._dropped = False  # the state row's delete for this suspension is committed (or pending)

    def suspend(self, reason: str) -> None:
        """Keep no rows until ``resume(reason)``: the next write transaction deletes the state row, so
        readers walk; the first one after the last resume rebuilds every row and records the term."""
        self._suspended.add(reason)

    def resume(self, reason: str) -> None:
        self._suspended.discard(reason)

    def touched(self, from_ids: Iterable[int]) -> None:
        if self._rebuild or self._suspended:
            return
        self._touched.update(from_ids)
        if len(self._touched) > REBUILD_ABOVE:
            self._rebuild = True
            self._touched.clear()

    def forget(self) -> None:
        """After a rollback (a rebuild may be undone) or on (re)gaining the writer role."""
        self._touched.clear()
        self._rebuild = False
        self._current = None
        self._dropped = False  # a rolled-back delete left the state row in place

    def refresh_locked(self, conn: Connection, fence: Fence) -> None:
        """Bring the rows up to date with this transaction's edge writes; call last, before commit."""
        touched, self._touched = self._touched, set()
        rebuild, self._rebuild = self._rebuild, False
        if self._suspended:
            if not self._dropped:  # once per suspension, in the first transaction whose edges it misses
                conn.execute(delete(reach_closure_state))
                self._dropped = True
            self._current = None  # so the first transaction after resume rebuilds
            return
        self._dropped = False
        if self._current != fence and kept_by_locked(conn) != (fence.lease, fence.holder, fence.epoch):
            rebuild_closure_locked(conn, fence)  # a new term: what happened before it is unknown
        elif rebuild:
            rebuild_closure_locked(conn, fence)
        elif touched:
            refresh_closure_locked(conn, touched)
        self._current = fence
