"""``POST /admit``: NodeRestriction over AdmissionReviews.

Lookups (a pod's node and uid, a node's uid, the facts of ``admission_facts``)
are one indexed read each, done in a worker thread, as is a SubjectAccessReview
NodeRestriction sends the API server (``app.web.access_reviews``). Bad input is a 400; a failed lookup
(database down, locked, missing tables) refuses the request with code 500 and
says why: fail closed, never an allow the rules did not reach.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from app.admission.options import DEFAULT_OPTIONS, AdmissionOptions
from app.admission.restriction import admit, describe_request
from app.admission.review import (
    MAX_ADMISSION_REVIEW_BYTES,
    AdmissionError,
    AdmissionRequest,
    parse_admission_review,
    render_admission_response,
)
from app.admission.verdict import Verdict
from app.graph.lookups import Authorizer, StoreLookups, no_authorizer
from app.telemetry.prometheus import database_errors
from app.web.bodies import BodyRefused, json_response, read_capped
from app.web.decision_recorder import DecisionRecorder
from app.web.failures import failure_cause
from app.web.metrics import ADMIT, ALLOW, DENY, ERROR, INVALID, resource_label

LOG = logging.getLogger("nodeauthz.admission")


def admission_failed(exc: BaseException, timeout: float) -> Verdict:
    return Verdict(False, f"nodeauthz: admission check failed: {failure_cause(exc, timeout)}", code=500)


def make_admit_endpoint(
    engine: Engine,
    timeout: float,
    options: AdmissionOptions = DEFAULT_OPTIONS,
    metrics: DecisionRecorder | None = None,
    *,
    authorizer: Authorizer = no_authorizer,
    lookups: StoreLookups | None = None,  # default: on ``engine``, asking ``authorizer``
) -> Callable[[Request], Awaitable[Response]]:
    # The decision runs on a worker thread: the lookups and a SubjectAccessReview (bounded by
    # ``timeout`` too) never block the event loop.
    lookups = lookups or StoreLookups(engine, authorizer)

    def decide(request: AdmissionRequest) -> Verdict:
        try:
            return admit(request, lookups, options)
        except Exception as exc:  # noqa: BLE001 - fail closed, with the cause in the log
            LOG.error(
                "admission check failed for %s: %s: %s", describe_request(request), type(exc).__name__, exc
            )
            if metrics is not None:
                database_errors().labels("admission_lookup").inc()
            return admission_failed(exc, timeout)

    async def admit_endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            review = parse_admission_review(await read_capped(request, MAX_ADMISSION_REVIEW_BYTES))
        except (AdmissionError, BodyRefused) as exc:
            if metrics is not None:
                metrics.decided(ADMIT, INVALID, "", started)
            return json_response({"error": str(exc)}, 400)
        try:
            async with asyncio.timeout(timeout):
                verdict = await asyncio.to_thread(decide, review)
        except TimeoutError as exc:
            if metrics is not None:
                database_errors().labels("admission_lookup").inc()
            LOG.error(
                "admission check failed for %s: %s", describe_request(review), failure_cause(exc, timeout)
            )
            verdict = admission_failed(exc, timeout)
        if not verdict.allowed:
            LOG.info("NODE ADMISSION DENY: %s: %s", describe_request(review), verdict.message)
        response = json_response(render_admission_response(review.uid, verdict))
        if metrics is not None:
            outcome = ALLOW if verdict.allowed else ERROR if verdict.code == 500 else DENY
            metrics.decided(ADMIT, outcome, resource_label(True, review.resource.resource), started)
        return response

    return admit_endpoint
