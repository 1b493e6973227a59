"""Explaining the graph to people: the paths from an object to a node, and what the graph holds.

``nodeauthz explain`` and ``stats``; never on the request path (the check itself is ``app.graph.reach``).
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from app.graph.reach import MAX_DEPTH
from app.k8s.kinds import NODE, VertexKey

_VERTEX_SQL = text("SELECT id FROM vertices WHERE kind = :kind AND namespace = :namespace AND name = :name")
_STEP_SQL = text(
    """
    SELECT e.to_id, v.kind, v.namespace, v.name FROM edges e JOIN vertices v ON v.id = e.to_id
     WHERE e.from_id = :id AND (e.node_id IS NULL OR e.node_id = :node_id)
     ORDER BY v.kind, v.namespace, v.name
    """
)


def find_paths(
    conn: Connection, node: str, start: VertexKey, *, limit: int = 20
) -> tuple[list[list[VertexKey]], bool]:
    """Paths start -> ... -> node (breadth first, shortest first); second value: more than ``limit``."""
    start_id = conn.execute(_VERTEX_SQL, start._asdict()).scalar()
    node_id = conn.execute(_VERTEX_SQL, {"kind": NODE, "namespace": "", "name": node}).scalar()
    if start_id is None or node_id is None:
        return [], False
    paths: list[list[VertexKey]] = []
    queue: deque[tuple[int, list[VertexKey]]] = deque([(start_id, [start])])
    while queue:
        vid, path = queue.popleft()
        if len(path) > MAX_DEPTH + 2:
            continue
        for to_id, kind, ns, name in conn.execute(_STEP_SQL, {"id": vid, "node_id": node_id}):
            step = VertexKey(kind, ns, name)
            if step in path:
                continue  # a cycle: never in a graph upstream would build, but never loop on one
            if to_id == node_id:
                paths.append([*path, step])
                if len(paths) > limit:
                    return paths[:limit], True
            else:
                queue.append((to_id, [*path, step]))
    return paths, False


# -- stats: what the graph holds ------------------------------------------------------------------

_STATS_SQL = {
    "vertices": text("SELECT kind, COUNT(*) FROM vertices GROUP BY kind ORDER BY kind"),
    "objects": text("SELECT kind, COUNT(*) FROM objects GROUP BY kind ORDER BY kind"),
    "edges": text(
        """
        SELECT f.kind || ' -> ' || t.kind, COUNT(*) FROM edges e
          JOIN vertices f ON f.id = e.from_id JOIN vertices t ON t.id = e.to_id
         GROUP BY f.kind, t.kind ORDER BY f.kind, t.kind
        """
    ),
}
_SYNC_SQL = text(
    "SELECT resource, resource_version, writer, epoch, synced_at FROM sync_state ORDER BY resource"
)


_UNSTORED_SQL = text(
    "SELECT kind, namespace, name, resource_version, reason, set_aside_at FROM unstored_objects "
    "ORDER BY set_aside_at DESC, kind, namespace, name LIMIT 100"
)


def graph_stats(conn: Connection) -> dict[str, object]:
    """Counts by kind, each resource's sync position, and the (latest 100) objects set aside."""
    out: dict[str, object] = {
        section: {str(k): int(n) for k, n in conn.execute(sql)} for section, sql in _STATS_SQL.items()
    }
    out["sync"] = {
        r.resource: {
            "resourceVersion": r.resource_version,
            "writer": r.writer,
            "epoch": int(r.epoch),
            "syncedAt": _iso(r.synced_at),
        }
        for r in conn.execute(_SYNC_SQL)
    }
    out["unstored"] = [
        {
            "kind": r.kind,
            "namespace": r.namespace,
            "name": r.name,
            "resourceVersion": r.resource_version,
            "reason": r.reason,
            "setAsideAt": _iso(r.set_aside_at),
        }
        for r in conn.execute(_UNSTORED_SQL)
    ]
    return out


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


_EDGE_TOTAL_SQL = text("SELECT COUNT(*) FROM edges")


def graph_totals(conn: Connection) -> tuple[dict[str, int], int]:
    """Objects by kind and the number of edges: where the writer's running counts start from."""
    objects = {str(k): int(n) for k, n in conn.execute(_STATS_SQL["objects"])}
    return objects, int(conn.execute(_EDGE_TOTAL_SQL).scalar() or 0)


def sync_times(conn: Connection) -> dict[str, datetime]:
    """When each resource's position was last committed (UTC)."""
    out = {}
    for resource, synced_at in conn.execute(text("SELECT resource, synced_at FROM sync_state")):
        if isinstance(synced_at, str):  # SQLite without type information
            synced_at = datetime.fromisoformat(synced_at)
        out[str(resource)] = synced_at.replace(tzinfo=UTC) if synced_at.tzinfo is None else synced_at
    return out
