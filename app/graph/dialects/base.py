"""What every database implementation provides; the shared parts of the bulk statements.

The shape of each bulk statement is the same on both databases; how rows
travel differs, by measurement (18.5k objects, 187k rows): SQLite takes one
``executemany`` on the raw driver, PostgreSQL one statement per batch with each
column as an array (psycopg's pipelined ``executemany`` spent ~40 us per row in
client-side bookkeeping: 9.2 s against 0.6 s). Table and column names are
constants of these modules; every value is a bound parameter.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Connection, DateTime, Engine, Table, literal
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects.liveness import LivenessLocks
from app.graph.reach import Reader
from app.k8s.kinds import VertexKey

CHUNK = 500  # keys per VALUES list in keyed reads: 1,500 parameters, under every driver's limit

ObjectRow = tuple[str, str, str, str, str, str, str]  # kind, namespace, name, uid, rv, node_name, fingerprint
EdgeRow = tuple[int, int, int, int | None]  # owner_id, from_id, to_id, node_id
VersionRow = tuple[int, str]  # id, resource_version
ObjectUpdateRow = tuple[int, str, str, str, str]  # id, uid, resource_version, node_name, fingerprint

OBJECT_COLUMNS = "kind, namespace, name, uid, resource_version, node_name, fingerprint"

Clock = Callable[[], float]  # POSIX seconds, like time.time

# How long a migrator waits for another one's migration before it gives up with MigrationLockTimeout.
MIGRATION_LOCK_TIMEOUT_S = 120


class MigrationLockTimeout(RuntimeError):
    """Another migrator held the migration lock for longer than MIGRATION_LOCK_TIMEOUT_S."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"another migrator has held the migration lock ({where}) for over {MIGRATION_LOCK_TIMEOUT_S}s; "
            "is a migration stuck?"
        )


def host_clock_now(
    clock: Clock | None, duration: float
) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
    """(now, now + duration) from this host's clock (or an injected one), as SQL literals."""
    now = datetime.fromtimestamp(clock() if clock is not None else time.time(), UTC)
    stamp = DateTime(timezone=True)
    return literal(now, stamp), literal(now + timedelta(seconds=duration), stamp)


class DialectImpl(abc.ABC):
    """Base of the per-database implementations; one instance per database serves every engine."""

    name: ClassVar[str]

    @abc.abstractmethod
    def insert(self, table: Table) -> Any:
        """The dialect's INSERT construct, which has ``on_conflict_do_nothing``/``_do_update``."""

    # -- engines ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_engine(self, url: str, *, pool_size: int, immediate: bool, create: bool = False) -> Engine:
        """A SQLAlchemy engine; ``immediate``: write transactions take the write lock at BEGIN;
        ``create``: the database may be created (migrations only)."""

    def limit_statement_time(self, conn: Connection, milliseconds: int) -> None:  # noqa: B027 - optional
        """Bound every statement of the current transaction where the database can (default: cannot)."""

    @abc.abstractmethod
    def migration_lock(self, conn: Connection) -> AbstractContextManager[None]:
        """Held while migrating, so replicas that migrate at once take turns."""

    # -- the writer lease's clock --------------------------------------------------------------------

    @abc.abstractmethod
    def clock_now(
        self, clock: Clock | None, duration: float
    ) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
        """(now, now + duration) as SQL, by the clock that judges the writer lease."""

    # -- the writer lease: fencing, takeovers, liveness -----------------------------------------------

    @abc.abstractmethod
    def check_fence(
        self, conn: Connection, *, lease: str, holder: str, epoch: int, duration: float, clock: Clock | None
    ) -> bool:
        """First statement of a fenced write transaction: True if (holder, epoch) still holds ``lease``.

        Must keep a takeover from committing while this transaction is open, and
        must never make the holder's renewals wait for it.
        """

    @abc.abstractmethod
    def lock_lease_for_takeover(self, conn: Connection, lease: str, wait_s: float) -> None:
        """Before a takeover's UPDATE: wait (at most ``wait_s``) for in-flight fenced writes to end."""

    @abc.abstractmethod
    def open_liveness(self, engine: Engine, lease: str) -> LivenessLocks:
        """The per-epoch liveness locks of ``lease`` (``app.graph.dialects.liveness``); opened lazily."""

    # -- planner statistics (app.graph.planner_stats) --------------------------------------------------

    def statistics_rows(self, conn: Connection, table: str) -> float | None:
        """How many rows the planner's statistics count in ``table``; None: this database plans without."""
        return None

    def analyze(self, conn: Connection, tables: Sequence[str]) -> None:  # noqa: B027 - optional
        """Refresh the planner's statistics of ``tables`` (called only where ``statistics_rows`` answers)."""

    # -- the request path ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def open_reader(self, url: str, *, pool_size: int, timeout: float) -> Reader:
        """A reader for the request path (raw driver; see the implementations for why)."""

    # -- bulk writes (inside the graph store's transaction) -------------------------------------------

    @abc.abstractmethod
    def select_by_keys(
        self, conn: Connection, table: str, columns: str, keys: Sequence[VertexKey]
    ) -> Iterator[Sequence[Any]]:
        """``columns`` of ``table`` (aliased ``t``) for each (kind, namespace, name) key found."""

    @abc.abstractmethod
    def insert_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> dict[VertexKey, int]:
        """Insert the missing ones; return the ids it learned on the way (maybe none: read them back)."""

    @abc.abstractmethod
    def insert_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> None: ...

    @abc.abstractmethod
    def insert_edges(self, conn: Connection, rows: Sequence[EdgeRow]) -> None: ...

    # The bulk path (app.graph.bulk_load) inserts rows it has just looked up and not found, inside the
    # fenced transaction of the only writer: a conflict is an error (the batch then takes the per-object path).

    @abc.abstractmethod
    def insert_new_vertices(self, conn: Connection, rows: Sequence[VertexKey]) -> list[int]:
        """Insert vertices known to be missing; their ids, in the order given."""

    @abc.abstractmethod
    def insert_new_objects(self, conn: Connection, rows: Sequence[ObjectRow]) -> list[int]:
        """Insert objects known to be missing; their ids, in the order given."""

    @abc.abstractmethod
    def update_versions(self, conn: Connection, rows: Sequence[VersionRow]) -> None: ...

    @abc.abstractmethod
    def update_objects(self, conn: Connection, rows: Sequence[ObjectUpdateRow]) -> None: ...
