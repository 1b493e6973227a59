"""Planner statistics that keep up with a graph growing faster than autoanalyze looks.

PostgreSQL plans by what ANALYZE last saw. An initial sync grows the graph tables from nothing to
millions of rows in minutes; autoanalyze looks about once a minute, and not at all where
autovacuum is off. Planned from an empty table's statistics, the closure keeper's reverse walk
(``edges.to_id IN`` 500 ids) scanned the whole table: ~1 s a statement at 800,000 edges, and the
initial sync of 150,000 pods had not finished after 8 minutes (115 s before the closure existed).
So the writer analyzes the graph tables itself whenever it has inserted many edges compared with
what the statistics know. It does so inside its write transaction: ANALYZE counts the
transaction's own rows, so a ``load`` of a whole file in one transaction is planned from real
figures too, and a rollback takes the statistics back with the rows.

SQLite plans by its index heuristics without statistics; its dialect reports none to keep, and
this does nothing there.
"""

from __future__ import annotations

from sqlalchemy import Connection

from app.graph.dialects.base import DialectImpl

# The tables the check and the writer's look-ups plan over (names are constants, never input).
GRAPH_TABLES = ("vertices", "edges", "objects", "reach_closure")
# Analyze again after inserting this many edges plus this share of what the statistics count:
# a plan flips from index to scan at orders of magnitude, not at 50%, and each ANALYZE samples
# about 30,000 rows per table, so a sync from nothing to a million edges analyzes ~15 times.
FLOOR_EDGES = 2_000
GROWTH_SHARE = 0.5


class PlannerStats:
    """Counts the edges this writer inserts and analyzes when the statistics fall behind."""

    def __init__(self, dialect: DialectImpl) -> None:
        self._dialect = dialect
        self._counted: float | None = None  # edges as the statistics have them; None: not read yet
        self._inserted = 0  # edges inserted since then
        self.analyzed = 0  # how many times this writer ran ANALYZE (tests and logs read it)

    def edges_inserted_locked(self, conn: Connection, count: int) -> None:
        """Called inside the write transaction after inserting ``count`` edges."""
        if count <= 0:
            return
        if self._counted is None:
            estimate = self._dialect.statistics_rows(conn, "edges")
            if estimate is None:
                return  # this database plans without statistics
            self._counted = estimate
        self._inserted += count
        if self._inserted < FLOOR_EDGES + GROWTH_SHARE * self._counted:
            return
        self._dialect.analyze(conn, GRAPH_TABLES)
        self.analyzed += 1
        self._counted = self._dialect.statistics_rows(conn, "edges") or 0.0
        self._inserted = 0

    def forget(self) -> None:
        """The transaction rolled back (its ANALYZE with it): read the statistics again next time."""
        self._counted = None
        self._inserted = 0
