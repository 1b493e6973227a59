"""The denial report's table: every no-opinion answered for a node, aggregated, from every replica.

The webhook buffers refusals in memory (``app.web.denial_buffer``) and hands them here in batches:
``record_denials`` adds each batch in one transaction, one upsert per distinct refusal (count added,
first seen kept earliest, last seen kept latest), so replicas writing the same row at once add up
exactly. ``prune_denials`` is the retention limit; ``query_denials`` is what ``nodeauthz denials``
prints, and ``referenced_objects`` what ``--explain`` adds: whether anything in the graph uses the
object at all (a node reading a secret no pod of any node uses is the classic finding).
Every value is a bound parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Connection, Engine, bindparam, case, delete, exists, select

from app.graph.dialects import for_engine
from app.graph.schema import KIND, NAME, REASON, denials, edges, vertices
from app.k8s.kinds import CLUSTER_SCOPED, resolve_kind

_LIMITS = {"verb": KIND, "reason": REASON}


class DenialKey(NamedTuple):
    """What one row of the report aggregates by (a tuple: cheap to build and hash on the request path)."""

    node: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    reason: str

    def clipped(self) -> DenialKey:
        """Each value cut to its column's length (a request may carry any string)."""
        return DenialKey(
            *(value[: _LIMITS.get(name, NAME)] for name, value in zip(self._fields, self, strict=True))
        )

    def digest(self) -> str:
        return hashlib.sha256("\x00".join(self).encode()).hexdigest()


@dataclass
class Tally:
    """How often a refusal was seen, and when first and last."""

    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class DenialRow:
    key: DenialKey
    count: int
    first_seen: datetime
    last_seen: datetime
    referenced: bool | None = None  # --explain: does anything in the graph use the object?


def record_denials(engine: Engine, tallies: Mapping[DenialKey, Tally]) -> None:
    """Add a batch of tallies to the table in one transaction."""
    if not tallies:
        return
    rows = []
    for key, tally in tallies.items():
        clipped = key.clipped()
        rows.append(
            {
                "key": clipped.digest(),
                **clipped._asdict(),
                "count": tally.count,
                "first_seen": tally.first_seen,
                "last_seen": tally.last_seen,
            }
        )
    stmt = for_engine(engine).insert(denials)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[denials.c.key],
        set_={
            "count": denials.c.count + new["count"],
            "first_seen": case(
                (new.first_seen < denials.c.first_seen, new.first_seen), else_=denials.c.first_seen
            ),
            "last_seen": case(
                (new.last_seen > denials.c.last_seen, new.last_seen), else_=denials.c.last_seen
            ),
        },
    )
    rows.sort(key=lambda r: r["key"])  # one lock order for every replica: no deadlocks between them
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def prune_denials(engine: Engine, older_than: datetime) -> int:
    """Delete rows last seen before ``older_than``; returns how many."""
    with engine.begin() as conn:
        return conn.execute(delete(denials).where(denials.c.last_seen < older_than)).rowcount


def query_denials(
    conn: Connection,
    *,
    since: datetime | None = None,
    node: str | None = None,
    resource: str | None = None,
    limit: int = 1000,
) -> list[DenialRow]:
    """Rows last seen at or after ``since`` (all when None), most frequent first."""
    stmt = select(denials).order_by(denials.c.count.desc(), denials.c.last_seen.desc(), denials.c.key)
    if since is not None:
        stmt = stmt.where(denials.c.last_seen >= since)
    if node is not None:
        stmt = stmt.where(denials.c.node == node)
    if resource is not None:
        stmt = stmt.where(denials.c.resource == resource)
    return [
        DenialRow(
            DenialKey(*(m[name] for name in DenialKey._fields)),
            int(m["count"]),
            _utc(m["first_seen"]),
            _utc(m["last_seen"]),
        )
        for m in conn.execute(stmt.limit(limit)).mappings()
    ]


def referenced_objects(conn: Connection, rows: Iterable[DenialRow]) -> list[DenialRow]:
    """``rows`` with ``referenced`` set: True when some edge leaves the object's vertex (a pod, or a
    PV a pod uses, uses it), False when none does, None when the resource is not a graph kind."""
    used = exists().where(edges.c.from_id == vertices.c.id)
    probe = select(vertices.c.id).where(
        vertices.c.kind == bindparam("kind"),
        vertices.c.namespace == bindparam("namespace"),
        vertices.c.name == bindparam("name"),
        used,
    )
    out = []
    for row in rows:
        kind = _graph_kind(row.key.resource)
        referenced = None
        if kind is not None and row.key.name and not row.key.subresource:
            namespace = "" if kind in CLUSTER_SCOPED else row.key.namespace
            params = {"kind": kind, "namespace": namespace, "name": row.key.name}
            referenced = conn.execute(probe, params).first() is not None
        out.append(DenialRow(row.key, row.count, row.first_seen, row.last_seen, referenced))
    return out


def _graph_kind(resource: str) -> str | None:
    try:
        return resolve_kind(resource)
    except ValueError:
        return None


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every timestamp written here is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
