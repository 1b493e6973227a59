"""The webhook app: ``/authorize``, ``/admit``, ``/healthz``, ``/readyz``, ``/metrics``; uvicorn's factories.

``/healthz`` is process liveness and touches nothing. ``/readyz`` asks
``app.ha.readiness`` (database, schema, and for a replica of ``nodeauthz run``
the shared graph's sync state). ``/metrics`` is Prometheus (``app.web.metrics``).
The probe listener (``--health-port``) serves the probes and ``/metrics`` only,
never a review. The denial buffer's flush task lives as long as the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.admission.options import AdmissionOptions
from app.graph.database import make_read_engine
from app.graph.reach import Reader
from app.ha.readiness import ReadinessReport, check_readiness_async
from app.ha.standby_readiness import with_read_replica
from app.telemetry.logs import configure_logging
from app.web.access_reviews import KubeconfigError, SubjectAccessReviewer, load_target
from app.web.admit import make_admit_endpoint
from app.web.authorize import Authorizer, make_authorize_endpoint
from app.web.bodies import json_response
from app.web.decision_recorder import DecisionRecorder
from app.web.denial_buffer import DenialBuffer
from app.web.fast_authorize import WebhookApp
from app.web.metrics import make_metrics_endpoint, webhook_metrics
from app.web.reader_slot import ReaderSlot
from app.web.settings import Settings
from app.web.standby_reads import StandbyReads

LOG = logging.getLogger("nodeauthz.webhook")

Readiness = Callable[[], Awaitable[ReadinessReport]]


def create_app(
    settings: Settings,
    *,
    reader: Reader | None = None,
    readiness: Readiness | None = None,
    health_only: bool = False,
) -> Starlette:
    """The webhook app. Without ``reader`` it opens (and closes) its own for ``settings.database_url``,
    or for ``settings.read_database_url`` (a standby) when set."""
    standby = StandbyReads.create(settings) if settings.read_database_url else None
    slot = ReaderSlot(
        settings.read_database_url or settings.database_url,
        settings.pool_size,
        settings.check_timeout,
        reader,
        replica=standby.replica if standby else None,
    )
    # Admission lookups and probes are rarer and synchronous: a small SQLAlchemy pool, used from threads.
    read_engine = make_read_engine(settings.database_url, pool_size=2)
    if readiness is None:
        readiness = functools.partial(
            check_readiness_async,
            read_engine,
            required_resources=settings.require_synced,
            self_synced=None,
            max_writer_silence=settings.max_writer_silence,
        )
        if standby is not None:
            readiness = with_read_replica(readiness, slot.get, standby.replica, settings.check_timeout)
    probe = readiness

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with asyncio.timeout(settings.check_timeout):
                report = await probe()
        except TimeoutError:
            report = ReadinessReport(False, {"database": f"no answer within {settings.check_timeout:g}s"})
        return json_response(
            {"ready": report.ready, "checks": dict(report.checks)}, 200 if report.ready else 503
        )

    recorder = DecisionRecorder(webhook_metrics()) if settings.metrics and not health_only else None
    denials = None
    if settings.denial_report and not health_only:
        denials = DenialBuffer(
            # Not the write engine: it would create a missing SQLite file. Each denial transaction
            # starts with its write, so a deferred BEGIN waits for the lock like an immediate one.
            make_read_engine(settings.database_url, pool_size=1),
            capacity=settings.denial_buffer_size,
            flush_interval=settings.denial_flush_interval,
            retention=timedelta(hours=settings.denial_retention_hours),
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await slot.get()
        except Exception as exc:  # noqa: BLE001 - serve anyway: not-allowed answers, readyz false
            LOG.error("database not reachable at startup (%s: %s); will retry", type(exc).__name__, exc)
        tasks = [asyncio.create_task(t.run()) for t in (denials, recorder, standby) if t is not None]
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if recorder is not None:
            recorder.publish()
        if denials is not None:
            await denials.close()  # what the last interval gathered
        await slot.close()
        read_engine.dispose()
        if standby is not None:
            standby.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(
            "/metrics",
            make_metrics_endpoint(probe, read_engine, recorder.publish if recorder else lambda: None),
            methods=["GET"],
        ),
    ]
    authorizer = None
    if not health_only:  # the plain-HTTP probe listener must never answer a review
        authorizer = Authorizer(
            slot.get,
            open_reader_now=lambda: slot.reader,
            gates=settings.feature_gates,
            timeout=settings.check_timeout,
            metrics=recorder,
            denials=denials,
        )
        admission_options = AdmissionOptions.from_gates(settings.feature_gates)
        reviewer = subject_access_reviewer(settings)
        routes += [
            Route("/authorize", make_authorize_endpoint(authorizer), methods=["POST"]),
            Route(
                "/admit",
                make_admit_endpoint(
                    read_engine,
                    settings.check_timeout,
                    admission_options,
                    recorder,
                    authorizer=reviewer,
                    lookups=standby.lookups(reviewer) if standby else None,
                ),
                methods=["POST"],
            ),
        ]
    # POST /authorize skips the router and middleware (app.web.fast_authorize); the rest is Starlette's.
    return WebhookApp(authorizer=authorizer, routes=routes, lifespan=lifespan)


def subject_access_reviewer(settings: Settings) -> SubjectAccessReviewer:
    """NodeRestriction's authorizer; a kubeconfig that cannot be used makes every question refuse, saying so."""
    try:
        target, why_none = load_target(settings.kubeconfig, settings.context)
        reviewer = SubjectAccessReviewer(target, settings.check_timeout, why_none)
    except KubeconfigError as exc:  # the commands check it first; a worker process says it and refuses
        target, why_none = None, str(exc)
        reviewer = SubjectAccessReviewer(None, settings.check_timeout, why_none)
    if target is None:
        LOG.warning("SubjectAccessReviews: %s", why_none or "no API server configured")
    return reviewer


def create_health_app_from_env() -> Starlette:
    """uvicorn's factory for the probe listener (``--health-port``): /healthz and /readyz only."""
    return create_app(Settings.from_env(), health_only=True)


def create_app_from_env() -> Starlette:
    """uvicorn's factory for ``nodeauthz serve``: settings come from the environment (see Settings)."""
    settings = Settings.from_env()
    # A uvicorn worker process starts with no logging set up; in-process, this repeats the command's.
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
