"""SubjectAccessReview (authorization.k8s.io v1 / v1beta1) parsing and rendering. Pure, no I/O.

Accepts what the API server's authorization webhook posts (webhook-protocols.md
section 1): ``spec`` with exactly one of ``resourceAttributes`` /
``nonResourceAttributes``, ``user``, ``groups`` (v1) or ``group`` (v1beta1), and
``metadata``/``status``/``uid``/``extra`` keys, which are ignored. Empty strings
are omitted by the sender, so absent and ``null`` string fields read as "".
Selectors are read from ``requirements`` only (the API server never sends
``rawSelector``; one that is posted is ignored, so it cannot widen access).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.authz.node_authorizer import Decision
from app.k8s.attributes import FieldRequirement, RequestAttributes
from app.k8s.json_fields import FieldError, get_map, get_str, get_str_list, json_type

API_V1 = "authorization.k8s.io/v1"
API_V1BETA1 = "authorization.k8s.io/v1beta1"
API_VERSIONS = (API_V1, API_V1BETA1)
KIND = "SubjectAccessReview"

# A real review is well under 2 KiB: names are at most 253 bytes, and the
# largest parts are the user's groups and ``extra``. 64 KiB leaves room for users
# in hundreds of groups and long label selectors, while bounding the memory and
# parse time one request can cost before anything is checked.
MAX_REVIEW_BYTES = 64 * 1024


class ReviewError(ValueError):
    """The request body is not a usable SubjectAccessReview; the message suits an HTTP 400."""


class ReviewTooLarge(ReviewError):
    """The body exceeds ``MAX_REVIEW_BYTES`` (answered as any malformed review: 400)."""


@dataclass(frozen=True, slots=True)
class ParsedReview:
    api_version: str
    attributes: RequestAttributes


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    try:
        return get_str(obj, key, where)
    except FieldError as exc:
        raise ReviewError(exc.sentence()) from None


def _object(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    try:
        return get_map(obj, key, where)
    except FieldError as exc:
        raise ReviewError(exc.sentence()) from None


def _string_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    try:
        return get_str_list(obj, key, where)
    except FieldError as exc:
        raise ReviewError(exc.sentence()) from None


def _selector(attrs: Mapping[str, Any], key: str, where: str) -> tuple[FieldRequirement, ...] | None:
    selector = _object(attrs, key, where)
    where = f"{where}.{key}"
    if selector is None:
        return None
    raw = selector.get("requirements")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ReviewError(f"{where}.requirements must be a list")
    reqs = []
    for i, item in enumerate(raw):
        at = f"{where}.requirements[{i}]"
        if not isinstance(item, dict):
            raise ReviewError(f"{at} must be an object, got {json_type(item)}")
        req: Mapping[str, Any] = item
        key_, op = req.get("key"), req.get("operator")
        if not isinstance(key_, str) or not isinstance(op, str):
            raise ReviewError(f"{at} needs string key and operator")
        reqs.append(FieldRequirement(key_, op, _string_list(req, "values", at)))
    return tuple(reqs)


def _verb(attrs: Mapping[str, Any], where: str) -> str:
    verb = _string(attrs, "verb", where)
    if not verb:
        raise ReviewError(f"missing {where}.verb")
    return verb


def _decode(body: bytes) -> Mapping[str, Any]:
    if len(body) > MAX_REVIEW_BYTES:
        raise ReviewTooLarge(f"request body is {len(body)} bytes; the limit is {MAX_REVIEW_BYTES}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ReviewError(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ReviewError("request body must be a JSON object")
    return doc


def parse_review(body: bytes) -> ParsedReview:
    """Parse a posted SubjectAccessReview. Raises ReviewError with a message for the client."""
    doc = _decode(body)
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be {API_V1!r} or {API_V1BETA1!r}, got {api_version!r}")
    if doc.get("kind") != KIND:
        raise ReviewError(f"kind must be {KIND!r}, got {doc.get('kind')!r}")
    spec = _object(doc, "spec", "")
    if spec is None:
        raise ReviewError("missing spec")

    user = _string(spec, "user", "spec")
    if not user:
        raise ReviewError("missing spec.user")
    groups_key = "groups" if api_version == API_V1 else "group"
    groups = _string_list(spec, groups_key, "spec")

    resource = _object(spec, "resourceAttributes", "spec")
    non_resource = _object(spec, "nonResourceAttributes", "spec")
    if resource is not None and non_resource is None:
        attrs = _resource_attributes(user, groups, resource)
    elif non_resource is not None and resource is None:
        where = "spec.nonResourceAttributes"
        attrs = RequestAttributes(
            user=user,
            groups=groups,
            verb=_verb(non_resource, where),
            resource_request=False,
            path=_string(non_resource, "path", where),
        )
    else:
        raise ReviewError("spec must have exactly one of resourceAttributes and nonResourceAttributes")
    return ParsedReview(api_version, attrs)


def _resource_attributes(
    user: str, groups: tuple[str, ...], resource: Mapping[str, Any]
) -> RequestAttributes:
    where = "spec.resourceAttributes"
    return RequestAttributes(
        user=user,
        groups=groups,
        verb=_verb(resource, where),
        resource_request=True,
        namespace=_string(resource, "namespace", where),
        api_group=_string(resource, "group", where),
        api_version=_string(resource, "version", where),
        resource=_string(resource, "resource", where),
        subresource=_string(resource, "subresource", where),
        name=_string(resource, "name", where),
        field_selector=_selector(resource, "fieldSelector", where),
        label_selector=_selector(resource, "labelSelector", where),
    )


def render_response(api_version: str, decision: Decision) -> dict[str, Any]:
    """The SubjectAccessReview answer. NoOpinion is ``allowed: false``; never ``denied``."""
    if api_version not in API_VERSIONS:
        raise ValueError(f"unsupported apiVersion {api_version!r}")
    status: dict[str, Any] = {"allowed": decision.allowed}
    if not decision.allowed and decision.reason:
        status["reason"] = decision.reason
    return {"apiVersion": api_version, "kind": KIND, "status": status}
