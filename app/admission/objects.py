"""Reading the objects of an admission request: type assertions and common fields. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.admission.lookups import AccessAnswer, AccessQuestion, AdmissionLookups
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden
from app.k8s.json_fields import get_map

# One rule per (API group, resource): it raises Forbidden or NotFound, or returns to admit.
Rule = Callable[[AdmissionRequest, str, AdmissionLookups, AdmissionOptions], None]

# Go's %T of the internal type upstream asserts on, by API group.
_GO_PACKAGES = {
    "": "core",
    "policy": "policy",
    "authentication.k8s.io": "authentication",
    "coordination.k8s.io": "coordination",
    "storage.k8s.io": "storage",
    "resource.k8s.io": "resource",
    "certificates.k8s.io": "certificates",
}


def _kind_of(obj: Mapping[str, Any], request: AdmissionRequest) -> tuple[str, str]:
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if isinstance(kind, str) and kind and isinstance(api_version, str):
        return (api_version.split("/")[0] if "/" in api_version else ""), kind
    return request.kind.group, request.kind.kind


def typed(
    request: AdmissionRequest,
    obj: Mapping[str, Any] | None,
    kind: str,
    *,
    reported: Mapping[str, Any] | None = None,
) -> Mapping[str, Any]:
    """``obj`` if it is a ``kind``, else upstream's ``unexpected type %T`` refusal.

    ``reported`` is the object named in the message (upstream names the new
    object when the old node has the wrong type).
    """
    if obj is not None and _kind_of(obj, request)[1] == kind:
        return obj
    shown = obj if reported is None else reported
    if shown is None:
        raise Forbidden("unexpected type <nil>")
    group, shown_kind = _kind_of(shown, request)
    raise Forbidden(f"unexpected type *{_GO_PACKAGES.get(group, group.split('.')[0])}.{shown_kind}")


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(obj, "metadata", "") or {}


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(obj, "spec", "") or {}


def labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return get_map(meta(obj), "labels", "metadata") or {}


def authorize_requester(
    r: AdmissionRequest, lookups: AdmissionLookups, verb: str, resource: str, name: str
) -> AccessAnswer:
    """Ask the API server's authorizer whether the requesting node may ``verb`` ``resource`` (core group, v1)
    named ``name`` in the request's namespace: upstream's ``authorizer.AttributesRecord`` for its user."""
    return lookups.authorize(
        AccessQuestion(
            user=r.username,
            groups=r.groups,
            uid=r.user_uid,
            extra=r.user_extra,
            verb=verb,
            namespace=r.namespace,
            api_group="",
            api_version="v1",
            resource=resource,
            name=name,
        )
    )


def unauthorized(what: str, r: AdmissionRequest, answer: AccessAnswer, purpose: str) -> Forbidden:
    """Upstream's refusal after the authorizer said no: ``<what> not found in pod spec volume, ...``."""
    if answer.error:
        return Forbidden(
            f"{what} not found in pod spec volume, error authorizing {r.username} to {purpose}: {answer.error}"
        )
    return Forbidden(f"{what} not found in pod spec volume, {r.username} is not authorized to {purpose}")
