"""The webhook app: ``/authorize``, ``/admit``, ``/healthz`` and ``/readyz``, and uvicorn's factories.

``/healthz`` is process liveness and touches nothing. ``/readyz`` asks
``app.ha.readiness`` (database, schema, and for a replica of ``nodeauthz run``
the shared graph's sync state). The probe listener (``--health-port``) serves
the two probes only, never a review.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.admission.options import AdmissionOptions
from app.graph.database import make_read_engine
from app.graph.reach import Reader
from app.ha.readiness import ReadinessReport, check_readiness_async
from app.web.admit import make_admit_endpoint
from app.web.authorize import make_authorize_endpoint
from app.web.bodies import json_response
from app.web.reader_slot import ReaderSlot
from app.web.settings import Settings

LOG = logging.getLogger("nodeauthz.webhook")

Readiness = Callable[[], Awaitable[ReadinessReport]]


def create_app(
    settings: Settings,
    *,
    reader: Reader | None = None,
    readiness: Readiness | None = None,
    health_only: bool = False,
) -> Starlette:
    """The webhook app. Without ``reader`` it opens (and closes) its own for ``settings.database_url``."""
    slot = ReaderSlot(settings.database_url, settings.pool_size, settings.check_timeout, reader)
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
    probe = readiness

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            report = await asyncio.wait_for(probe(), settings.check_timeout)
        except TimeoutError:
            report = ReadinessReport(False, {"database": f"no answer within {settings.check_timeout:g}s"})
        return json_response(
            {"ready": report.ready, "checks": dict(report.checks)}, 200 if report.ready else 503
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await slot.get()
        except Exception as exc:  # noqa: BLE001 - serve anyway: not-allowed answers, readyz false
            LOG.error("database not reachable at startup (%s: %s); will retry", type(exc).__name__, exc)
        yield
        await slot.close()
        read_engine.dispose()

    routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
    if not health_only:  # the plain-HTTP probe listener must never answer a review
        authorize = make_authorize_endpoint(
            slot.get, gates=settings.feature_gates, timeout=settings.check_timeout
        )
        admission_options = AdmissionOptions.from_gates(settings.feature_gates)
        routes += [
            Route("/authorize", authorize, methods=["POST"]),
            Route(
                "/admit",
                make_admit_endpoint(read_engine, settings.check_timeout, admission_options),
                methods=["POST"],
            ),
        ]
    return Starlette(routes=routes, lifespan=lifespan)


def create_health_app_from_env() -> Starlette:
    """uvicorn's factory for the probe listener (``--health-port``): /healthz and /readyz only."""
    return create_app(Settings.from_env(), health_only=True)


def create_app_from_env() -> Starlette:
    """uvicorn's factory for ``nodeauthz serve``: settings come from the environment (see Settings)."""
    settings = Settings.from_env()
    # Each readiness probe opens an alembic context, which announces itself at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    return create_app(settings)
