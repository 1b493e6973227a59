"""The authorization webhook: ``POST /authorize`` answers SubjectAccessReviews.

Never an allow by accident: bad input is a 400 (the API server then applies its
failurePolicy), and any failure while deciding (database unreachable, locked,
missing tables) is ``allowed: false`` with a reason saying the check failed.
``denied`` is never sent, so the API server's chain goes on to RBAC exactly as
with the in-tree Node authorizer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.authz.node_authorizer import Decision, PathQuery, decide, resolve
from app.authz.subject_access_review import (
    MAX_REVIEW_BYTES,
    ParsedReview,
    ReviewError,
    ReviewTooLarge,
    parse_review,
    render_response,
)
from app.graph.database import make_read_engine
from app.graph.reach import DepthBoundHit
from app.graph.readers import Reader, open_reader
from app.ha.readiness import check_readiness_async
from app.k8s.attributes import RequestAttributes, node_identity
from app.web.admit import make_admit_endpoint
from app.web.settings import Settings

AUDIT = logging.getLogger("nodeauthz.audit")
LOG = logging.getLogger("nodeauthz.webhook")
REOPEN_INTERVAL_S = 1.0  # how often a failed database connection is retried by requests


class ReadinessResult(Protocol):
    @property
    def ready(self) -> bool: ...

    @property
    def checks(self) -> Mapping[str, str]: ...


Readiness = Callable[[], Awaitable[ReadinessResult]]


@dataclass(frozen=True)
class _Report:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


def check_failed(exc: BaseException) -> Decision:
    return Decision(False, f"nodeauthz: graph check failed: {type(exc).__name__}")


def check_incomplete(exc: DepthBoundHit) -> Decision:
    return Decision(False, f"nodeauthz: graph check could not complete: {exc}")


def attributes_for_log(attrs: RequestAttributes) -> dict[str, Any]:
    if not attrs.resource_request:
        return {"user": attrs.user, "verb": attrs.verb, "path": attrs.path}
    fields: dict[str, Any] = {
        "user": attrs.user, "verb": attrs.verb, "group": attrs.api_group, "resource": attrs.resource,
        "subresource": attrs.subresource, "namespace": attrs.namespace, "name": attrs.name,
    }
    if attrs.field_selector is not None:
        fields["fieldSelector"] = [[r.key, r.operator, list(r.values)] for r in attrs.field_selector]
    return fields


def audit(attrs: RequestAttributes, decision: Decision) -> None:
    """Upstream logs ``NODE DENY: '<node>' <attributes>``; the same, as one JSON-tailed line."""
    level = logging.DEBUG if decision.allowed else logging.INFO
    if not AUDIT.isEnabledFor(level):
        return
    node, is_node = node_identity(attrs.user, attrs.groups)
    if not is_node:
        return
    fields = attributes_for_log(attrs)
    fields["reason"] = decision.reason
    verdict = "ALLOW" if decision.allowed else "DENY"
    AUDIT.log(level, "NODE %s: '%s' %s", verdict, node, orjson.dumps(fields).decode())


class _ReaderSlot:
    """The reader, opened at startup or, if the database was down then, by a later request."""

    def __init__(self, settings: Settings, reader: Reader | None) -> None:
        self.settings = settings
        self.reader = reader
        self.owned = reader is None
        self._lock = asyncio.Lock()
        self._last_error: BaseException | None = None
        self._retry_at = 0.0

    async def get(self) -> Reader:
        if self.reader is not None:
            return self.reader
        async with self._lock:
            if self.reader is None:
                if self._last_error is not None and time.monotonic() < self._retry_at:
                    raise self._last_error
                try:
                    settings = self.settings
                    self.reader = await open_reader(settings.database_url, pool_size=settings.pool_size)
                except Exception as exc:
                    self._last_error, self._retry_at = exc, time.monotonic() + REOPEN_INTERVAL_S
                    raise
            return self.reader

    async def close(self) -> None:
        if self.owned and self.reader is not None:
            reader, self.reader = self.reader, None
            await reader.close()


async def decide_with_graph(
    attrs: RequestAttributes, get_reader: Callable[[], Awaitable[Reader]], *, authorize_with_selectors: bool
) -> Decision:
    """The decision for ``attrs``; failures become a not-allowed decision, never an exception.

    ``get_reader`` is only awaited when the graph is needed (static rules need no database).
    """
    try:
        result = decide(attrs, authorize_with_selectors=authorize_with_selectors)
        if isinstance(result, Decision):
            return result
        query: PathQuery = result
        reader = await get_reader()
        reach = await reader.reach(query.node, query.kind, query.namespace, query.name)
        return resolve(query, reach.verdict())
    except DepthBoundHit as exc:
        LOG.warning("graph check incomplete for %s: %s", attrs.user, exc)
        return check_incomplete(exc)
    except Exception as exc:  # noqa: BLE001 - any failure must answer "not allowed", not 500
        LOG.error("graph check failed for %s: %s: %s", attrs.user, type(exc).__name__, exc)
        return check_failed(exc)


async def read_capped(request: Request, limit: int = MAX_REVIEW_BYTES) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them (header, then stream)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ReviewError("invalid Content-Length")
        if int(length) > limit:
            raise ReviewTooLarge(f"request body is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ReviewTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _default_readiness(settings: Settings, slot: _ReaderSlot) -> _Report:
    """Database reachable through the request path's reader, and the schema at alembic head."""
    from app.graph.migrations import current_revision_at, head_revision

    try:
        reader = await slot.get()
        await reader.ping()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return _Report(False, {"database": f"unreachable: {type(exc).__name__}: {exc}"})

    try:
        current, head = await asyncio.to_thread(current_revision_at, settings.database_url), head_revision()
    except Exception as exc:  # noqa: BLE001
        return _Report(False, {"database": "ok", "schema": f"unknown: {type(exc).__name__}: {exc}"})
    if current != head:
        found = current or "no revision"
        return _Report(False, {"database": "ok", "schema": f"at {found}, need {head}: run nodeauthz migrate"})
    return _Report(True, {"database": "ok", "schema": f"at head {head}"})


def create_app(
    settings: Settings,
    *,
    reader: Reader | None = None,
    readiness: Readiness | None = None,
    health_only: bool = False,
) -> Starlette:
    """The webhook app. Without ``reader`` it opens (and closes) its own for ``settings.database_url``."""
    slot = _ReaderSlot(settings, reader)
    selectors = settings.authorize_with_selectors
    # Admission lookups are rarer and synchronous: a small SQLAlchemy pool, used from worker threads.
    admission_engine = make_read_engine(settings.database_url, pool_size=2)
    admit = make_admit_endpoint(admission_engine, read_capped)
    if readiness is None and settings.require_synced:
        # A replica of `nodeauthz run`: ready only once the shared graph is synced by a live writer.
        readiness = functools.partial(
            check_readiness_async, admission_engine, required_resources=settings.require_synced, self_synced=None
        )

    async def authorize(request: Request) -> Response:
        try:
            review: ParsedReview = parse_review(await read_capped(request))
        except ReviewError as exc:
            return _json({"error": str(exc)}, 400)
        decision = await decide_with_graph(review.attributes, slot.get, authorize_with_selectors=selectors)
        audit(review.attributes, decision)
        return _json(render_response(review.api_version, decision))

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        report = await (readiness() if readiness is not None else _default_readiness(settings, slot))
        return _json({"ready": report.ready, "checks": dict(report.checks)}, 200 if report.ready else 503)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await slot.get()
        except Exception as exc:  # noqa: BLE001 - serve anyway: not-allowed answers, readyz false
            LOG.error("database not reachable at startup (%s: %s); will retry", type(exc).__name__, exc)
        yield
        await slot.close()
        admission_engine.dispose()

    probes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
    decisions = [Route("/authorize", authorize, methods=["POST"]), Route("/admit", admit, methods=["POST"])]
    # health_only: the plain-HTTP probe listener must never answer a review.
    return Starlette(routes=probes if health_only else decisions + probes, lifespan=lifespan)


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
