"""The webhook's metrics, and ``GET /metrics`` (on the webhook port and the probe port).

Decisions are counted by webhook, outcome and resource; the resource label only takes the names the
authorizer and NodeRestriction know (anything else is ``other``, a non-resource request
``nonresource``), so a kubelet cannot mint label values. ``nodeauthz_ready`` and
``nodeauthz_sync_resource_version_age_seconds`` are computed when scraped, from the shared database,
so every replica reports them whichever replica writes. With ``$PROMETHEUS_MULTIPROC_DIR`` set (the
serving commands always set it) a scrape adds up every process: all uvicorn workers and the writer
child of ``nodeauthz run``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from app.authz.node_authorizer import SUBDIVIDED_RESOURCES
from app.graph.explain import sync_times
from app.ha.readiness import ReadinessReport
from app.telemetry.prometheus import DURATION_BUCKETS, MULTIPROC_ENV, NAMESPACE, database_errors

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# What NodeRestriction is registered for beyond the authorizer's resources.
ADMISSION_RESOURCES = frozenset({"certificatesigningrequests"})
RESOURCE_LABELS = SUBDIVIDED_RESOURCES | ADMISSION_RESOURCES
AUTHORIZE, ADMIT = "authorize", "admit"
# Outcomes: allow; no_opinion (authorize refuses, RBAC may still allow); deny (admit refuses);
# error (the check failed: database, depth bound); invalid (a malformed review, HTTP 400).
ALLOW, NO_OPINION, DENY, ERROR, INVALID = "allow", "no_opinion", "deny", "error", "invalid"


@dataclass(frozen=True)
class WebhookMetrics:
    decisions: Counter
    duration: Histogram
    graph_check: Histogram
    ready: Gauge
    resource_version_age: Gauge
    denials_dropped: Counter
    denials_recorded: Counter


@functools.cache
def webhook_metrics() -> WebhookMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return WebhookMetrics(
        decisions=Counter(
            "decisions",
            "Reviews answered, by webhook, outcome and resource",
            ["webhook", "decision", "resource"],
            namespace=NAMESPACE,
        ),
        duration=Histogram(
            "decision_duration_seconds",
            "Time to answer a review, body read to response built, by webhook",
            ["webhook"],
            namespace=NAMESPACE,
            buckets=DURATION_BUCKETS,
        ),
        graph_check=Histogram(
            "graph_check_duration_seconds",
            "Time of the graph check's SQL statement alone",
            namespace=NAMESPACE,
            buckets=DURATION_BUCKETS,
        ),
        ready=Gauge(
            "ready",
            "1 when /readyz would answer 200 (database, schema, sync), else 0; computed when scraped",
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
        resource_version_age=Gauge(
            "sync_resource_version_age_seconds",
            "Seconds since the writer last committed a position for the resource (watch events and "
            "bookmarks both move it); computed when scraped from the shared database",
            ["resource"],
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
        denials_dropped=Counter(
            "denials_dropped",
            "Refusals not added to the denial report: buffer full, or its flush failed",
            namespace=NAMESPACE,
        ),
        denials_recorded=Counter(
            "denials_recorded",
            "Refusals added to the denial report's table",
            namespace=NAMESPACE,
        ),
    )


def resource_label(resource_request: bool, resource: str) -> str:
    if not resource_request:
        return "nonresource"
    return resource if resource in RESOURCE_LABELS else "other"


def exposition_registry() -> CollectorRegistry:
    """What a scrape shows: every process of the multiprocess directory, or this process alone."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def render_metrics() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(exposition_registry()), CONTENT_TYPE_LATEST


def make_metrics_endpoint(
    readiness: Callable[[], Awaitable[ReadinessReport]],
    read_engine: Engine,
    before_scrape: Callable[[], None] = lambda: None,
) -> Callable[[Request], Awaitable[Response]]:
    """``before_scrape``: publish what this process holds back (``DecisionRecorder.publish``)."""
    metrics = webhook_metrics()
    database_errors()  # present (at zero) from the first scrape

    def positions() -> dict[str, datetime]:
        with read_engine.connect() as conn:
            return sync_times(conn)

    async def metrics_endpoint(request: Request) -> Response:
        before_scrape()
        report = await readiness()
        metrics.ready.set(1 if report.ready else 0)
        try:
            synced = await asyncio.to_thread(positions)
        except Exception:  # noqa: BLE001 - a scrape must still answer; readiness already says why
            database_errors().labels("metrics_scrape").inc()
            synced = {}
        now = datetime.now(UTC)
        for resource, at in synced.items():
            metrics.resource_version_age.labels(resource).set(max(0.0, (now - at).total_seconds()))
        body, content_type = await asyncio.to_thread(render_metrics)
        return Response(body, media_type=content_type)

    return metrics_endpoint
