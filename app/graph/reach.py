"""The check: "may node N reach object (kind, namespace, name)?", as one SQL statement.

The check is one statement. Every edge into a pod or node carries that node
(``node_id``), so "does a pod on node N use X?" is one index probe on
``edges(from_id, node_id, ...)``, whatever X's fan-out: a configmap mounted by
every pod of a namespace costs the same as a secret used by one pod (the naive
walk over all its pods was 500x slower in the field notes). Only objects with
plain out-edges (a secret used by PVs: secret -> pv -> pvc) need more: the
writer stores what their walk reaches (``reach_closure``, ``app.graph.closure``),
so while that closure is kept they cost one more probe; otherwise the indexed
recursive CTE walks plain edges and probes for N at each vertex.
``UNION`` ends the walk on cycles; the depth bound is reported when hit, never
turned into a silent deny. Result codes: 2 found, 1 depth bound hit, 0 none.

The SQL text lives here once; ``render`` turns its ``:name`` parameters into
each driver's placeholder style (raw sqlite3, asyncpg) for the request path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, text

# Longest plain-edge chain upstream builds is secret -> pv -> pvc (2 hops); allow slack.
MAX_DEPTH = 8

_NODE_ID = "(SELECT n.id FROM vertices n WHERE n.kind = 'node' AND n.namespace = '' AND n.name = :node)"

# The general case: walk plain edges, probing for the node at each vertex.
_WALK = f"""(
    WITH RECURSIVE walk(id, depth) AS (
        SELECT v.id, 0 FROM vertices v
         WHERE v.kind = :kind AND v.namespace = :namespace AND v.name = :name
      UNION
        SELECT e.to_id, w.depth + 1 FROM walk w
          JOIN edges e ON e.from_id = w.id AND e.node_id IS NULL
         WHERE w.depth < :max_depth
    )
    SELECT COALESCE(MAX(CASE
      WHEN EXISTS (
        SELECT 1 FROM edges e
         WHERE e.from_id = w.id
           AND e.node_id = {_NODE_ID}
      ) THEN 2
      WHEN w.depth = :max_depth AND EXISTS (
        SELECT 1 FROM edges e WHERE e.from_id = w.id AND e.node_id IS NULL
      ) THEN 1
      ELSE 0 END), 0) FROM walk w
  )"""  # noqa: S608 - built from this module's constants; every value is a bound parameter

# The closure (app.graph.closure) counts only while the writer term that keeps it holds the lease:
# code that does not maintain it writes under another epoch. ``v.id`` in it makes the subquery
# correlated, so SQLite evaluates it only when reached (uncorrelated ones run up front).
_KEPT = """l.name = s.lease AND l.holder = s.holder AND l.epoch = s.epoch AND v.id IS NOT NULL"""

# The check: one lookup of the object and of the node, then probes keyed by their ids. Direct edges
# first (a pod's own secret); then the closure (a PV's secret: what its walk reaches, stored at write
# time); objects without plain out-edges end there; the recursive walk runs only while the closure
# is not kept (during a rollout with an old writer, or before a new writer's first write). An
# unknown node leaves ``n.id`` NULL, which no probe matches.
REACH_SQL = f"""
SELECT COALESCE((
  SELECT CASE
    WHEN EXISTS (SELECT 1 FROM edges e WHERE e.from_id = v.id AND e.node_id = n.id) THEN 2
    WHEN EXISTS (
      SELECT 1 FROM reach_closure c, reach_closure_state s, writer_lease l
       WHERE c.source_id = v.id AND c.node_id = n.id AND {_KEPT}
    ) THEN 2
    WHEN NOT EXISTS (SELECT 1 FROM edges e WHERE e.from_id = v.id AND e.node_id IS NULL) THEN 0
    WHEN EXISTS (SELECT 1 FROM reach_closure_state s, writer_lease l WHERE {_KEPT}) THEN CASE
      WHEN EXISTS (SELECT 1 FROM reach_closure c WHERE c.source_id = v.id AND c.node_id = 0) THEN 1
      ELSE 0 END
    ELSE {_WALK} END
  FROM vertices v LEFT JOIN vertices n ON n.kind = 'node' AND n.namespace = '' AND n.name = :node
  WHERE v.kind = :kind AND v.namespace = :namespace AND v.name = :name
), 0) AS reach
"""  # noqa: S608 - built from this module's constants

# The same check without the closure: the pure recursive walk (the differential test's yardstick).
WALK_SQL = f"""
SELECT CASE
  WHEN EXISTS (
    SELECT 1 FROM vertices v JOIN edges e ON e.from_id = v.id
     WHERE v.kind = :kind AND v.namespace = :namespace AND v.name = :name
       AND e.node_id = {_NODE_ID}
  ) THEN 2
  WHEN NOT EXISTS (
    SELECT 1 FROM vertices v JOIN edges e ON e.from_id = v.id AND e.node_id IS NULL
     WHERE v.kind = :kind AND v.namespace = :namespace AND v.name = :name
  ) THEN 0
  ELSE {_WALK} END AS reach
"""  # noqa: S608 - built from this module's constants

# REACH_SQL with its per-check parameters read from the columns of a row ``q``.
_REACH_OF_ROW = re.sub(r"(?<!:):(node|kind|namespace|name)\b", r"q.\1", REACH_SQL)

# PostgreSQL only: many checks in one statement, one code per check in the order given (what the
# request path sends for the checks that wait at the same moment, ``app.graph.coalesce``). It is
# REACH_SQL itself, its per-check parameters read from one row of the arrays each: under load, one
# execution answers many checks (a statement's fixed cost in the backend, ~45 us, was most of a check).
BATCH_REACH_SQL = f"""
SELECT array_agg(r.reach ORDER BY q.i) AS reaches
  FROM unnest(CAST(:nodes AS text[]), CAST(:kinds AS text[]), CAST(:namespaces AS text[]),
              CAST(:names AS text[])) WITH ORDINALITY AS q(node, kind, namespace, name, i)
 CROSS JOIN LATERAL ({_REACH_OF_ROW}) r
"""  # noqa: S608 - built from this module's constants

# The order positional drivers receive REACH_SQL's parameters in.
REACH_PARAMS = ("kind", "namespace", "name", "max_depth", "node")

# One primary-key lookup: the baseline benchmarks compare a check against.
PK_LOOKUP_SQL = "SELECT id FROM vertices WHERE kind = :kind AND namespace = :namespace AND name = :name"


class DepthBoundHit(RuntimeError):
    """The walk reached MAX_DEPTH with edges left to follow: the answer would be a guess."""


@dataclass(frozen=True)
class Reach:
    found: bool
    truncated: bool = False

    @classmethod
    def from_code(cls, code: int | None) -> Reach:
        """REACH_SQL's ``reach`` column: 2 found, 1 depth bound hit without a path, 0 none."""
        return cls(found=code == 2, truncated=code == 1)

    def verdict(self) -> bool:
        """found, or raise when the bound cut the walk short without finding a path."""
        if not self.found and self.truncated:
            raise DepthBoundHit(f"graph walk stopped at depth {MAX_DEPTH} with edges left to follow")
        return self.found


class Reader(Protocol):
    """The request path's read of the graph: one ``REACH_SQL`` per check, on a raw driver.

    One implementation per database (``app.graph.dialects``), chosen by measurement.
    """

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def render(sql: str, style: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` placeholders -> ``?`` (qmark), ``%s`` (format, psycopg) or ``$1`` (numeric, asyncpg).

    Returns the SQL and the order in which positional parameters must be passed.
    """
    order: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if style == "numeric":
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"
        order.append(name)
        return "%s" if style == "format" else "?"

    return re.sub(r"(?<!:):([a-z_]+)", repl, sql), tuple(order)


def reach_params(node: str, kind: str, namespace: str, name: str) -> dict[str, object]:
    return {"kind": kind, "namespace": namespace, "name": name, "max_depth": MAX_DEPTH, "node": node}


Check = tuple[str, str, str, str]  # node, kind, namespace, name


def batch_reach_params(checks: Sequence[Check]) -> dict[str, object]:
    """BATCH_REACH_SQL's parameters: one array per field of the checks."""
    nodes, kinds, namespaces, names = (list(field) for field in zip(*checks, strict=True))
    return {"nodes": nodes, "kinds": kinds, "namespaces": namespaces, "names": names, "max_depth": MAX_DEPTH}


def has_path(
    conn: Connection, node: str, kind: str, namespace: str, name: str, *, sql: str = REACH_SQL
) -> Reach:
    """The check over a SQLAlchemy connection (CLI, tests; the webhook uses raw drivers)."""
    code = conn.execute(text(sql), reach_params(node, kind, namespace, name)).scalar()
    return Reach.from_code(code)
