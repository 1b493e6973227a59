"""``POST /authorize``: SubjectAccessReviews answered by the Node authorizer over the graph.

Never an allow by accident: bad input is a 400 (the API server then applies its
failurePolicy), and any failure while deciding (database unreachable, locked,
missing tables) is ``allowed: false`` with a reason saying the check failed.
``denied`` is never sent, so the API server's chain goes on to RBAC exactly as
with the in-tree Node authorizer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.authz.node_authorizer import Decision, PathQuery, decide, resolve
from app.authz.subject_access_review import MAX_REVIEW_BYTES, ReviewError, parse_review, render_response
from app.graph.reach import DepthBoundHit, Reach, Reader
from app.graph.readers import DEFAULT_READ_TIMEOUT_S
from app.k8s.attributes import RequestAttributes, node_identity
from app.k8s.feature_gates import FeatureGates
from app.web.bodies import BodyRefused, json_response, read_capped

AUDIT = logging.getLogger("nodeauthz.audit")
LOG = logging.getLogger("nodeauthz.webhook")

Endpoint = Callable[[Request], Awaitable[Response]]


def check_failed(exc: BaseException) -> Decision:
    return Decision(False, f"nodeauthz: graph check failed: {type(exc).__name__}")


def check_incomplete(exc: DepthBoundHit) -> Decision:
    return Decision(False, f"nodeauthz: graph check could not complete: {exc}")


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


async def decide_with_graph(
    attrs: RequestAttributes,
    get_reader: Callable[[], Awaitable[Reader]],
    *,
    gates: FeatureGates,
    timeout: float = DEFAULT_READ_TIMEOUT_S,
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
            return await reader.reach(query.node, query.kind, query.namespace, query.name)

        reach = await asyncio.wait_for(ask(), timeout)
        return resolve(query, reach.verdict())
    except DepthBoundHit as exc:
        LOG.warning("graph check incomplete for %s: %s", attrs.user, exc)
        return check_incomplete(exc)
    except TimeoutError:
        LOG.error("graph check failed for %s: no answer from the database within %.1fs", attrs.user, timeout)
        return Decision(
            False, f"nodeauthz: graph check failed: no answer from the database within {timeout:g}s"
        )
    except Exception as exc:  # noqa: BLE001 - any failure must answer "not allowed", not 500
        LOG.error("graph check failed for %s: %s: %s", attrs.user, type(exc).__name__, exc)
        return check_failed(exc)


def make_authorize_endpoint(
    get_reader: Callable[[], Awaitable[Reader]], *, gates: FeatureGates, timeout: float
) -> Endpoint:
    async def authorize(request: Request) -> Response:
        try:
            review = parse_review(await read_capped(request, MAX_REVIEW_BYTES))
        except (ReviewError, BodyRefused) as exc:
            return json_response({"error": str(exc)}, 400)
        decision = await decide_with_graph(review.attributes, get_reader, gates=gates, timeout=timeout)
        audit(review.attributes, decision)
        return json_response(render_response(review.api_version, decision))

    return authorize
