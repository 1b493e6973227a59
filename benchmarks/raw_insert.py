"""The floor for an initial sync: the same graph rows, bulk-inserted with the driver's fastest plain path.

Rows are read back from a synced database (ids included, so no read-back of
generated ids is needed), then inserted into a fresh migrated one: SQLite with
``executemany`` in one transaction, PostgreSQL with ``COPY``. Same connection
settings and indexes as the store's own writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.graph.database import is_sqlite
from app.graph.dialects.sqlite import sqlite_path, tune_connection
from app.graph.migrations import upgrade
from app.graph.schema import metadata

# table -> columns, in foreign-key order
TABLES: dict[str, tuple[str, ...]] = {
    "vertices": ("id", "kind", "namespace", "name"),
    "objects": ("id", "kind", "namespace", "name", "uid", "resource_version", "node_name", "fingerprint"),
    "edges": ("owner_id", "from_id", "to_id", "node_id"),
}


@dataclass
class GraphRows:
    tables: dict[str, list[tuple[Any, ...]]]
    probe: tuple[str, str, str] | None  # (node, namespace, secret) some node may read

    def count(self, table: str) -> int:
        return len(self.tables[table])


def fresh_database(url: str) -> None:
    """Migrate to head and empty every table (a removed file for SQLite)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(path + suffix)
            except FileNotFoundError:
                pass
        upgrade(url)
        return
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


def read_rows(url: str) -> GraphRows:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = {
                name: [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(cols)} FROM {name}")]  # noqa: S608
                for name, cols in TABLES.items()
            }
            probe = conn.exec_driver_sql(
                "SELECT n.name, s.namespace, s.name FROM edges e JOIN vertices s ON s.id = e.from_id "
                "JOIN vertices n ON n.id = e.node_id WHERE s.kind = 'secret' LIMIT 1"
            ).first()
    finally:
        engine.dispose()
    return GraphRows(tables, (str(probe[0]), str(probe[1]), str(probe[2])) if probe else None)


def raw_insert(url: str, rows: GraphRows) -> float:
    """Seconds to insert ``rows`` into the (fresh, migrated) database at ``url`` and commit."""
    return _sqlite_insert(url, rows) if is_sqlite(url) else _postgres_copy(url, rows)


def _sqlite_insert(url: str, rows: GraphRows) -> float:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        tune_connection(conn)
        started = time.perf_counter()
        conn.execute("BEGIN")
        for table, cols in TABLES.items():
            marks = ", ".join("?" * len(cols))
            conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows.tables[table])  # noqa: S608
        conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def _postgres_copy(url: str, rows: GraphRows) -> float:
    import psycopg

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for table, cols in TABLES.items():
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows.tables[table]:
                        copy.write_row(row)
        return time.perf_counter() - started
