"""The writer's metrics: how fresh the graph is, how the watches fare, and what the graph holds.

Recorded by the sync worker and its informers, in the writer process (the child of ``nodeauthz run``
or ``nodeauthz sync``); the webhook's ``/metrics`` shows them through the multiprocess directory.
``nodeauthz_objects`` and ``nodeauthz_edges`` are the worker's running counts: one COUNT when it starts
writing, then each committed transaction's changes, never a COUNT per scrape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.telemetry.prometheus import NAMESPACE

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

# Event arrival -> commit: 1 ms (a quiet SQLite writer) to 30 s (a re-list holding the write lock).
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RESTART_REASONS = ("timeout", "error", "gone")


@dataclass(frozen=True)
class SyncMetrics:
    lag: Histogram
    watch_restarts: Counter
    relists: Counter
    skipped: Counter
    objects: Gauge
    edges: Gauge


@functools.cache
def sync_metrics() -> SyncMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return SyncMetrics(
        lag=Histogram(
            "sync_lag_seconds",
            "Watch event arrival to its commit in the graph, by resource",
            ["resource"],
            namespace=NAMESPACE,
            buckets=LAG_BUCKETS,
        ),
        watch_restarts=Counter(
            "watch_restarts",
            "Watches that ended and were opened again: timeout (clean end), error, gone (410: re-list)",
            ["resource", "reason"],
            namespace=NAMESPACE,
        ),
        relists=Counter(
            "relists",
            "Complete lists of a resource (the first sync and every re-list after 410)",
            ["resource"],
            namespace=NAMESPACE,
        ),
        skipped=Counter(
            "skipped_objects",
            "Watched objects the graph could not hold (kept at their stored version), by kind and reason",
            ["kind", "reason"],
            namespace=NAMESPACE,
        ),
        objects=Gauge(
            "objects",
            "Watched objects in the graph, by kind, as counted by the writer",
            ["kind"],
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
        edges=Gauge(
            "edges",
            "Edges in the graph, as counted by the writer",
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
    )
