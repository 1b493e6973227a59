"""AdmissionReview (admission.k8s.io/v1) parsing and rendering. Pure, no I/O.

Accepts exactly the request the kube-apiserver sends to a validating webhook
(spec webhook-protocols.md section 2) and renders the matching response. A
malformed review raises ``AdmissionError``; its message is meant for an HTTP 400
body (the apiserver then applies the webhook's ``failurePolicy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.admission.verdict import Verdict
from app.k8s.json_fields import FieldError, get_bool, get_map, get_str, get_str_list, join, json_type

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})

# The apiserver caps a request body at 3 MiB and etcd an object at ~1.5 MiB; a
# review carries the new object and the old one, JSON-escaped. 8 MiB leaves room
# for both and still bounds what one request can make us parse.
MAX_ADMISSION_REVIEW_BYTES = 8 * 1024 * 1024


class AdmissionError(ValueError):
    """The body is not a well-formed admission.k8s.io/v1 AdmissionReview request."""


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """``request`` of an AdmissionReview. Absent strings are "", absent objects None."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str
    name: str
    namespace: str
    operation: str
    username: str
    groups: tuple[str, ...]
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool
    options: Mapping[str, Any] | None
    # The rest of ``userInfo``, passed on when NodeRestriction asks the API server's authorizer.
    user_uid: str = ""
    user_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _str(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
    try:
        value = get_str(obj, key, path)
    except FieldError as exc:
        raise AdmissionError(exc.sentence()) from None
    if required and obj.get(key) is None:
        raise AdmissionError(f"{join(path, key)} is required")
    if required and not value:
        raise AdmissionError(f"{join(path, key)} must not be empty")
    return value


def _map(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Mapping[str, Any] | None:
    try:
        value = get_map(obj, key, path)
    except FieldError as exc:
        raise AdmissionError(exc.sentence()) from None
    if value is None and required:
        raise AdmissionError(f"{join(path, key)} is required")
    return value


def _gvk(req: Mapping[str, Any], key: str) -> GroupVersionKind:
    m = _map(req, key, "request", required=True)
    assert m is not None
    path = f"request.{key}"
    return GroupVersionKind(
        _str(m, "group", path), _str(m, "version", path), _str(m, "kind", path, required=True)
    )


def _gvr(req: Mapping[str, Any], key: str) -> GroupVersionResource:
    m = _map(req, key, "request", required=True)
    assert m is not None
    path = f"request.{key}"
    return GroupVersionResource(
        _str(m, "group", path), _str(m, "version", path), _str(m, "resource", path, required=True)
    )


def parse_admission_review(body: bytes) -> AdmissionRequest:
    """Parse an admission.k8s.io/v1 AdmissionReview request body; raise AdmissionError if malformed."""
    if len(body) > MAX_ADMISSION_REVIEW_BYTES:
        raise AdmissionError(
            f"admission review is {len(body)} bytes; the limit is {MAX_ADMISSION_REVIEW_BYTES} bytes"
        )
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise AdmissionError(f"admission review is not valid JSON: {err}") from None
    if not isinstance(review, dict):
        raise AdmissionError(f"admission review must be a JSON object, got {json_type(review)}")
    api_version = review.get("apiVersion")
    kind = review.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise AdmissionError(
            f"expected apiVersion {API_VERSION!r} and kind {KIND!r}, got {api_version!r} and {kind!r}"
            " (set admissionReviewVersions: [v1] in the webhook configuration)"
        )
    req = _map(review, "request", "", required=True)
    assert req is not None
    user = _map(req, "userInfo", "request", required=True)
    assert user is not None
    operation = _str(req, "operation", "request", required=True)
    if operation not in OPERATIONS:
        raise AdmissionError(
            f"request.operation must be one of {', '.join(sorted(OPERATIONS))}, got {operation!r}"
        )
    try:
        dry_run = get_bool(req, "dryRun", "request")
        groups = get_str_list(user, "groups", "request.userInfo")
        extra_map = get_map(user, "extra", "request.userInfo") or {}
        extra = {k: get_str_list(extra_map, k, "request.userInfo.extra") for k in extra_map}
    except FieldError as exc:
        raise AdmissionError(exc.sentence()) from None
    return AdmissionRequest(
        uid=_str(req, "uid", "request", required=True),
        kind=_gvk(req, "kind"),
        resource=_gvr(req, "resource"),
        sub_resource=_str(req, "subResource", "request"),
        name=_str(req, "name", "request"),
        namespace=_str(req, "namespace", "request"),
        operation=operation,
        username=_str(user, "username", "request.userInfo"),
        groups=groups,
        object=_map(req, "object", "request"),
        old_object=_map(req, "oldObject", "request"),
        dry_run=dry_run,
        options=_map(req, "options", "request"),
        user_uid=_str(user, "uid", "request.userInfo"),
        user_extra=extra,
    )


def render_admission_response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview response for ``verdict``; ``status`` only when refused, never a patch.

    ``status.reason`` is the Kubernetes StatusReason upstream's error carries
    (Forbidden, or NotFound for a failed lookup), so kubectl prints
    ``Error from server (Forbidden)`` as it does for the in-tree plugin.
    """
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {
            "code": verdict.code,
            "reason": _REASONS.get(verdict.code, "Forbidden"),
            "message": verdict.message,
        }
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


_REASONS = {403: "Forbidden", 404: "NotFound", 500: "InternalError"}
