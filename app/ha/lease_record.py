"""The writer lease row as read: who holds it, since when, and whether it looks expired.

Readiness reads it (``read_lease``); only ``app.ha.lease`` writes it. Expiry is judged by the
clock the lease is written with: the database's on PostgreSQL, this host's on SQLite.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.sql.elements import ColumnElement

from app.graph.dialects import for_name
from app.graph.dialects.base import Clock
from app.graph.schema import writer_lease

DEFAULT_LEASE = "graph-writer"


def unique_holder(prefix: str | None = None) -> str:
    """A holder id unique to this process: two processes sharing one id would share one fence."""
    base = prefix or os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseInfo:
    """The lease row as read at ``observed_at`` (the database's clock on PostgreSQL)."""

    holder: str
    epoch: int
    expires_at: datetime
    renewed_at: datetime
    acquired_at: datetime
    observed_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= self.observed_at

    @property
    def remaining(self) -> float:
        """Seconds until expiry (negative: expired that long ago)."""
        return (self.expires_at - self.observed_at).total_seconds()


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clock_exprs(
    conn: Connection, clock: Clock | None, duration: float = 0.0
) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
    """(now, now + duration) as SQL, by the clock that judges the lease (see the module docstring)."""
    return for_name(conn.dialect.name).clock_now(clock, duration)


def read_lease(
    conn: Connection, name: str = DEFAULT_LEASE, *, clock: Clock | None = None
) -> LeaseInfo | None:
    """The lease row, judged by the same clock the lease is written with (one PK lookup)."""
    now, _ = clock_exprs(conn, clock)
    row = conn.execute(
        select(
            writer_lease.c.holder,
            writer_lease.c.epoch,
            writer_lease.c.expires_at,
            writer_lease.c.renewed_at,
            writer_lease.c.acquired_at,
            now.label("observed_at"),
        ).where(writer_lease.c.name == name)
    ).first()
    if row is None:
        return None
    return LeaseInfo(
        holder=row.holder,
        epoch=row.epoch,
        expires_at=utc(row.expires_at),
        renewed_at=utc(row.renewed_at),
        acquired_at=utc(row.acquired_at),
        observed_at=utc(row.observed_at),
    )
