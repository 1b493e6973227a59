"""A node's blast radius: every object the graph lets node N read right now, with what grants each.

The check (``app.graph.reach``) walks from one object toward nodes. This walks the other way, from
the node: the vertices with an edge into the node (its pods, and objects bound to it such as
VolumeAttachments and ResourceSlices), then every vertex with an edge into those that leads to this
node, then plain edges backward (pvc <- pv <- secret). Every step is a probe of
``edges(to_id, from_id)``, so the cost follows the node's own pods, not the cluster. ``grant`` is the
vertex bound to the node that the object was reached through: the pod to stop, or the object itself.

One statement per kind (``NODE_REACH_SQL``), the same text ``nodeauthz reach`` runs and the README
shows. The depth bound is the check's; the walk cannot loop (``UNION``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.graph.reach import MAX_DEPTH
from app.k8s.kinds import NODE, VERTEX_KINDS, VertexKey

NODE_REACH_SQL = """
WITH RECURSIVE granted(id, grant_id, depth) AS (
    SELECT e.from_id, e.from_id, 0 FROM edges e
     WHERE e.to_id = (SELECT n.id FROM vertices n WHERE n.kind = 'node' AND n.namespace = '' AND n.name = :node)
  UNION
    SELECT e.from_id, g.grant_id, g.depth + 1 FROM granted g
      JOIN edges e ON e.to_id = g.id
     WHERE g.depth < :max_depth
       AND (e.node_id IS NULL
            OR e.node_id = (SELECT n.id FROM vertices n WHERE n.kind = 'node' AND n.namespace = '' AND n.name = :node))
)
SELECT DISTINCT v.namespace, v.name, gv.kind AS grant_kind, gv.namespace AS grant_namespace, gv.name AS grant_name
  FROM granted g
  JOIN vertices v ON v.id = g.id
  JOIN vertices gv ON gv.id = g.grant_id
 WHERE v.kind = :kind
 ORDER BY v.namespace, v.name, gv.kind, gv.namespace, gv.name
"""

# Kinds a node can be granted (every vertex kind but the node itself).
REACHABLE_KINDS: tuple[str, ...] = tuple(k for k in VERTEX_KINDS if k != NODE)


@dataclass(frozen=True)
class Grant:
    """``obj`` is readable by the node because of ``via`` (a pod on the node, or ``obj`` itself)."""

    obj: VertexKey
    via: VertexKey


def node_reach(conn: Connection, node: str, kinds: tuple[str, ...] = REACHABLE_KINDS) -> list[Grant]:
    """Every (object, grant) for ``node``, kind by kind in the order given."""
    statement = text(NODE_REACH_SQL)
    grants: list[Grant] = []
    for kind in kinds:
        params = {"node": node, "kind": kind, "max_depth": MAX_DEPTH + 1}
        for row in conn.execute(statement, params):
            grants.append(
                Grant(
                    VertexKey(kind, row.namespace, row.name),
                    VertexKey(row.grant_kind, row.grant_namespace, row.grant_name),
                )
            )
    return grants
