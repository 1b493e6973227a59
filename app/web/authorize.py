"""``POST /authorize``: SubjectAccessReviews answered by the Node authorizer over the graph.

Never an allow by accident: bad input is a 400 (the API server then applies its
failurePolicy), and any failure while deciding (database unreachable, locked,
missing tables) is ``allowed: false`` with a reason saying the check failed.
``denied`` is never sent, so the API server's chain goes on to RBAC exactly as
with the in-tree Node authorizer.

Each answer is counted (``app.web.metrics``, when given), and each no-opinion for a node is logged on
``nodeauthz.audit`` with the request's fields as structured keys and added to the denial buffer
(``app.web.denial_buffer``, when given): neither does I/O on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.authz.node_authorizer import Decision, PathQuery, decide, resolve
from app.authz.subject_access_review import MAX_REVIEW_BYTES, ReviewError, parse_review, render_response
from app.graph.denials import DenialKey
from app.graph.reach import DepthBoundHit, Reach, Reader
from app.graph.readers import DEFAULT_READ_TIMEOUT_S
from app.k8s.attributes import RequestAttributes, node_identity
from app.k8s.feature_gates import FeatureGates
from app.telemetry.logs import FIELDS
from app.telemetry.prometheus import database_errors
from app.web.bodies import BodyRefused, read_capped
from app.web.decision_recorder import DecisionRecorder
from app.web.denial_buffer import DenialBuffer
from app.web.failures import failure_cause
from app.web.metrics import AUTHORIZE, INVALID, resource_label

AUDIT = logging.getLogger("nodeauthz.audit")
LOG = logging.getLogger("nodeauthz.webhook")

Endpoint = Callable[[Request], Awaitable[Response]]


FAILURE_PREFIX = "nodeauthz: graph check "  # the reasons of decisions the check could not make


def check_failed(exc: BaseException, timeout: float = DEFAULT_READ_TIMEOUT_S) -> Decision:
    return Decision(False, f"{FAILURE_PREFIX}failed: {failure_cause(exc, timeout)}")


def check_incomplete(exc: DepthBoundHit) -> Decision:
    return Decision(False, f"{FAILURE_PREFIX}could not complete: {exc}")


def outcome(decision: Decision) -> str:
    """The ``decision`` label: allow, no_opinion, or error when the check itself failed."""
    if decision.allowed:
        return "allow"
    return "error" if decision.reason.startswith(FAILURE_PREFIX) else "no_opinion"


def attributes_for_log(attrs: RequestAttributes) -> dict[str, Any]:
    if not attrs.resource_request:
        return {"user": attrs.user, "verb": attrs.verb, "path": attrs.path}
    fields: dict[str, Any] = {
        "user": attrs.user,
        "verb": attrs.verb,
        "group": attrs.api_group,
        "resource": attrs.resource,
        "subresource": attrs.subresource,
        "namespace": attrs.namespace,
        "name": attrs.name,
    }
    if attrs.field_selector is not None:
        fields["fieldSelector"] = [[r.key, r.operator, list(r.values)] for r in attrs.field_selector]
    return fields


def audit(node: str, attrs: RequestAttributes, decision: Decision) -> None:
    """Upstream logs ``NODE DENY: '<node>' <attributes>``; the same, escaped: the node as a Python
    literal and the attributes as JSON, so no value can break the line. The fields also go as
    ``extra`` keys, which the JSON log format writes as keys of the line's object."""
    level = logging.DEBUG if decision.allowed else logging.INFO
    if not AUDIT.isEnabledFor(level):
        return
    fields = attributes_for_log(attrs)
    fields["reason"] = decision.reason
    verdict = "ALLOW" if decision.allowed else "DENY"
    extra = {FIELDS: {"node": node, "decision": verdict.lower(), **fields}}
    # makeRecord + handle is what Logger.log does, minus the stack walk for the caller's file and
    # line (no log format prints them): a third of a refusal's audit cost under load.
    args = (verdict, node, orjson.dumps(fields).decode())
    AUDIT.handle(AUDIT.makeRecord(AUDIT.name, level, __file__, 0, "NODE %s: %r %s", args, None, extra=extra))


def denial_key(node: str, attrs: RequestAttributes, reason: str) -> DenialKey:
    name = attrs.name if attrs.resource_request else attrs.path
    return DenialKey(node, attrs.verb, attrs.resource, attrs.subresource, attrs.namespace, name, reason)


async def decide_with_graph(
    attrs: RequestAttributes,
    get_reader: Callable[[], Awaitable[Reader]],
    *,
    gates: FeatureGates,
    timeout: float = DEFAULT_READ_TIMEOUT_S,
    metrics: DecisionRecorder | None = None,
    open_reader_now: Callable[[], Reader | None] | None = None,
) -> Decision:
    """The decision for ``attrs``; failures become a not-allowed decision, never an exception.

    ``get_reader`` is only awaited when the graph is needed (static rules need no database).
    The graph's answer (opening the reader included) must come within ``timeout`` seconds.
    ``open_reader_now`` gives the reader if it is open: one with ``reach_now`` (SQLite) may
    answer on the spot, when nothing can make the read wait, with no deadline needed.
    """
    try:
        result = decide(attrs, gates)
        if isinstance(result, Decision):
            return result
        query: PathQuery = result
        now = _reach_now(open_reader_now, query, metrics)
        if now is not None:
            return resolve(query, now.verdict())

        async def ask() -> Reach:
            reader = await get_reader()
            started = time.perf_counter()
            reach = await reader.reach(query.node, query.kind, query.namespace, query.name)
            if metrics is not None:
                metrics.checked(time.perf_counter() - started)
            return reach

        # asyncio.timeout, not wait_for: wait_for runs the read as a new task, which queues behind every
        # other ready one and made p99 at 32 connections 29 ms instead of 6.
        async with asyncio.timeout(timeout):
            reach = await ask()
        return resolve(query, reach.verdict())
    except DepthBoundHit as exc:
        LOG.warning("graph check incomplete for %r: %s", attrs.user, exc)
        return check_incomplete(exc)
    except Exception as exc:  # noqa: BLE001 - any failure, a deadline included, answers "not allowed", not 500
        LOG.error("graph check failed for %r: %s: %s", attrs.user, failure_cause(exc, timeout), exc)
        if metrics is not None:
            database_errors().labels("graph_check").inc()
        return check_failed(exc, timeout)


class Authorizer:
    """``POST /authorize`` without the HTTP framework: body bytes in, (status, JSON bytes) out.

    Served by the raw ASGI fast path (``app.web.fast_authorize``) and by the Starlette route.
    """

    def __init__(
        self,
        get_reader: Callable[[], Awaitable[Reader]],
        *,
        gates: FeatureGates,
        timeout: float,
        metrics: DecisionRecorder | None = None,
        denials: DenialBuffer | None = None,
        open_reader_now: Callable[[], Reader | None] | None = None,
    ) -> None:
        self.get_reader = get_reader
        self.open_reader_now = open_reader_now
        self.gates = gates
        self.timeout = timeout
        self.metrics = metrics
        self.denials = denials

    def refuse(self, exc: Exception, started: float) -> tuple[int, bytes]:
        """A body that is not a SubjectAccessReview (or is too large): HTTP 400 with the reason."""
        if self.metrics is not None:
            self.metrics.decided(AUTHORIZE, INVALID, "", started)
        return 400, orjson.dumps({"error": str(exc)})

    async def answer(self, body: bytes, started: float) -> tuple[int, bytes]:
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self.refuse(exc, started)
        attrs = review.attributes
        metrics = self.metrics
        decision = await decide_with_graph(
            attrs,
            self.get_reader,
            gates=self.gates,
            timeout=self.timeout,
            metrics=metrics,
            open_reader_now=self.open_reader_now,
        )
        node, is_node = node_identity(attrs.user, attrs.groups)
        if is_node:
            audit(node, attrs, decision)
            if self.denials is not None and not decision.allowed:
                self.denials.add(denial_key(node, attrs, decision.reason))
        response = orjson.dumps(render_response(review.api_version, decision))
        if metrics is not None:
            label = resource_label(attrs.resource_request, attrs.resource)
            metrics.decided(AUTHORIZE, outcome(decision), label, started)
        return 200, response


def _reach_now(
    open_reader_now: Callable[[], Reader | None] | None, query: PathQuery, metrics: DecisionRecorder | None
) -> Reach | None:
    reader = open_reader_now() if open_reader_now is not None else None
    reach_now = getattr(reader, "reach_now", None)
    if reach_now is None:
        return None
    started = time.perf_counter()
    reach: Reach | None = reach_now(query.node, query.kind, query.namespace, query.name)
    if reach is not None and metrics is not None:
        metrics.checked(time.perf_counter() - started)
    return reach


def make_authorize_endpoint(authorizer: Authorizer) -> Endpoint:
    """The same as a Starlette endpoint (kept for the route table: other methods get its 405)."""

    async def authorize(request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await read_capped(request, MAX_REVIEW_BYTES)
        except BodyRefused as exc:
            status, payload = authorizer.refuse(exc, started)
        else:
            status, payload = await authorizer.answer(body, started)
        return Response(payload, status_code=status, media_type="application/json")

    return authorize
