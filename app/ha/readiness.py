"""Is this replica ready to answer? The database is reachable, the schema is current, the graph is synced.

"Synced" has two routes. The writer knows it has completed its own initial
list (``self_synced=True``). Any replica, including a restarted reader, is
also ready when the shared database says so: every required resource has a
``sync_state`` row, and a writer is alive to keep it current. Alive means the
``writer_lease`` row has not expired, or was renewed within
``max_writer_silence`` (so a normal hand-over, a crashed writer's lease
expiring and a peer taking over, does not take every replica out of service at
once). The rows must be the current writer's (same holder and epoch) or, for
``max_writer_silence`` after a new writer was elected, its predecessor's: the
graph it left stands while the new writer re-lists.

``nodeauthz serve`` requires the core resources too (a webhook that has never
seen the cluster must not take traffic); one told to require none
(``--require-synced none``) is ready once the database answers and the schema
is current.

Cheap enough for kubelet probes: three primary-key lookups plus the alembic
version read. It never raises: an error becomes a not-ready report.
Pass a read engine (``make_read_engine``): on SQLite the write engine's
``BEGIN IMMEDIATE`` would make the probe queue behind the writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Connection, Engine, select, text

from app.graph.dialects import for_engine
from app.graph.dialects.base import Clock
from app.graph.migrations import schema_problem
from app.graph.schema import sync_state
from app.ha.lease_record import DEFAULT_LEASE, LeaseInfo, read_lease
from app.k8s import feature_gates as fg
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGates

__all__ = [
    "CORE_RESOURCES",
    "OK",
    "ReadinessReport",
    "check_readiness",
    "check_readiness_async",
    "required_resources",
]

LOG = logging.getLogger("nodeauthz.readiness")
OK = "ok"
# Resources every cluster serves; optional ones (resourceslices, podcertificaterequests) do not gate readiness.
CORE_RESOURCES = ("pods", "nodes", "persistentvolumes", "volumeattachments")
# Served by every cluster too, but read only by NodeRestriction checks behind these gates: required
# only while one of the gates is on (a check that cannot find them would refuse every request).
GATED_RESOURCES: dict[str, tuple[str, ...]] = {
    "persistentvolumeclaims": (fg.SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION,),
    "csidrivers": (fg.SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION,),
    "serviceaccounts": (fg.POD_CERTIFICATE_REQUEST,),
}
STATEMENT_TIMEOUT_MS = 2000  # a probe that hangs is worse than one that says "not ready"


@dataclass(frozen=True)
class ReadinessReport:
    """``ready`` is true exactly when every check is "ok"; otherwise a check says what is missing."""

    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


def _report(checks: dict[str, str]) -> ReadinessReport:
    return ReadinessReport(ready=all(v == OK for v in checks.values()), checks=checks)


def _error(step: str, exc: BaseException) -> str:
    """The probe's short reason. The detail (a server's host, port, user) goes to the log only:
    /readyz may be served in plain HTTP to anyone who can reach the probe port."""
    LOG.warning("readiness: %s: %s: %s", step, type(exc).__name__, exc)
    return f"{type(exc).__name__} (details in the log)"


def check_readiness(
    engine: Engine,
    *,
    required_resources: Sequence[str],
    self_synced: bool | None,
    max_writer_silence: float = 30.0,
    lease_name: str = DEFAULT_LEASE,
    clock: Clock | None = None,
) -> ReadinessReport:
    """Whether this replica may serve; ``checks`` names what is missing. Never raises."""
    checks: dict[str, str] = {}
    step = "database"  # the check an exception is reported under
    try:
        with engine.connect() as conn:
            for_engine(engine).limit_statement_time(conn, STATEMENT_TIMEOUT_MS)
            conn.execute(text("SELECT 1"))
            checks["database"] = OK
            step = "schema"
            checks["schema"] = schema_problem(conn) or OK
            if checks["schema"] != OK:
                return _report(checks)  # the tables below may not exist in this shape
            if self_synced:
                checks["graph"] = OK
                return _report(checks)
            if not required_resources:
                return _report(checks)
            step = "writer_lease"
            lease = read_lease(conn, lease_name, clock=clock)
            checks["writer_lease"] = _lease_problem(lease, lease_name, max_writer_silence) or OK
            step = "sync_state"
            checks["sync_state"] = _sync_problem(conn, lease, required_resources, max_writer_silence) or OK
            if self_synced is False and not all(v == OK for v in checks.values()):
                checks["initial_list"] = "this writer's initial list has not completed"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not crash
        checks[step] = ("unreachable: " if step == "database" else "error: ") + _error(step, exc)
    return _report(checks)


def _sync_problem(
    conn: Connection, lease: LeaseInfo | None, resources: Sequence[str], max_silence: float
) -> str | None:
    wanted = list(dict.fromkeys(resources))
    stmt = select(sync_state.c.resource, sync_state.c.writer, sync_state.c.epoch).where(
        sync_state.c.resource.in_(wanted)
    )
    rows = {r.resource: r for r in conn.execute(stmt)}
    problems: list[str] = []
    if never := [r for r in wanted if r not in rows]:
        # Only a writer's completed list (or a watch after it) writes a mark; `load` writes none.
        problems.append(
            f"never synced: no writer has completed an initial list of {', '.join(never)} in this "
            "database (run `nodeauthz run` or `nodeauthz sync` against it)"
        )
    for resource in wanted:
        row = rows.get(resource)
        if row is not None and lease is not None and (row.writer, row.epoch) != (lease.holder, lease.epoch):
            # A new writer's predecessor's rows stand while it re-lists, for max_silence.
            in_office = (lease.observed_at - lease.acquired_at).total_seconds()
            if in_office > max_silence:
                problems.append(
                    f"{resource} last synced by {row.writer} epoch {row.epoch}; the current writer "
                    f"{lease.holder} epoch {lease.epoch} has not synced it in {in_office:.0f}s"
                )
    return "; ".join(problems) or None


def _lease_problem(lease: LeaseInfo | None, name: str, max_silence: float) -> str | None:
    if lease is None:
        return f"no writer lease row {name!r}: no replica has ever been the writer"
    if not lease.expired:
        return None
    silence = (lease.observed_at - lease.renewed_at).total_seconds()
    if silence <= max_silence:
        return None  # hand-over in progress
    return (
        f"writer lease expired {-lease.remaining:.0f}s ago (holder {lease.holder}, epoch {lease.epoch}); "
        f"no writer has renewed it for {silence:.0f}s"
    )


async def check_readiness_async(
    engine: Engine,
    *,
    required_resources: Sequence[str],
    self_synced: bool | None,
    max_writer_silence: float = 30.0,
    lease_name: str = DEFAULT_LEASE,
    clock: Clock | None = None,
) -> ReadinessReport:
    """``check_readiness`` on a worker thread, for async handlers."""
    return await asyncio.to_thread(
        partial(
            check_readiness,
            engine,
            required_resources=required_resources,
            self_synced=self_synced,
            max_writer_silence=max_writer_silence,
            lease_name=lease_name,
            clock=clock,
        )
    )


def required_resources(requested: Sequence[str], gates: FeatureGates = DEFAULT_GATES) -> tuple[str, ...]:
    """What readiness waits for: the core resources among those this replica syncs, and the ones
    NodeRestriction reads while the gates that need them are on."""
    wanted = set(requested) if requested else set(CORE_RESOURCES) | set(GATED_RESOURCES)
    needed = [r for r, needing in GATED_RESOURCES.items() if any(gates.enabled(g) for g in needing)]
    return tuple(r for r in (*CORE_RESOURCES, *needed) if r in wanted)
