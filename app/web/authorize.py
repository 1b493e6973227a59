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
from app.web.bodies import BodyRefused, json_response, read_capped
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
    AUDIT.log(level, "NODE %s: %r %s", verdict, node, orjson.dumps(fields).decode(), extra=extra)


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
) -> Decision:
    """The decision for ``attrs``; failures become a not-allowed decision, never an exception.

    ``get_reader`` is only awaited when the graph is needed (static rules need no database).
    The graph's answer (opening the reader included) must come within ``timeout`` seconds.
    """
    try:
        result = decide(attrs, gates)
        if isinstance(result, Decision):
            return result
        query: PathQuery = result

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


def make_authorize_endpoint(
    get_reader: Callable[[], Awaitable[Reader]],
    *,
    gates: FeatureGates,
    timeout: float,
    metrics: DecisionRecorder | None = None,
    denials: DenialBuffer | None = None,
) -> Endpoint:
    async def authorize(request: Request) -> Response:
        started = time.perf_counter()
        try:
            review = parse_review(await read_capped(request, MAX_REVIEW_BYTES))
        except (ReviewError, BodyRefused) as exc:
            if metrics is not None:
                metrics.decided(AUTHORIZE, INVALID, "", started)
            return json_response({"error": str(exc)}, 400)
        attrs = review.attributes
        decision = await decide_with_graph(attrs, get_reader, gates=gates, timeout=timeout, metrics=metrics)
        node, is_node = node_identity(attrs.user, attrs.groups)
        if is_node:
            audit(node, attrs, decision)
            if denials is not None and not decision.allowed:
                denials.add(denial_key(node, attrs, decision.reason))
        response = json_response(render_response(review.api_version, decision))
        if metrics is not None:
            label = resource_label(attrs.resource_request, attrs.resource)
            metrics.decided(AUTHORIZE, outcome(decision), label, started)
        return response

    return authorize
