"""The NodeRestriction admission rules, as a pure function of an AdmissionRequest. No I/O.

Reproduces upstream's ``plugin/pkg/admission/noderestriction`` decision for
decision (spec node-restriction.md). A refusal carries upstream's full text,
``<resource>[.<group>] "<name>" is forbidden: <reason>`` (``admission.NewForbidden``);
the apiserver prefixes ``admission webhook "<name>" denied the request: ``.
Pods are handled here; every other resource in ``app.admission.rules``.

Differences forced by running as a webhook over nodeauthz's store:
- Existing pods and nodes come from ``AdmissionLookups`` (namespace, name, uid,
  nodeName only). A miss gives upstream's lister text, ``pod "<name>" not found``
  or ``node "<name>" not found``, followed by ``NOT_IN_STORE``, with HTTP 404.
  A pod DELETE reads the pod from the review's ``oldObject`` (the apiserver's
  current copy) and looks it up only when that is absent.
- ServiceAccountNodeAudienceRestriction needs pod volumes and CSIDriver objects
  the store does not hold: see ``AudiencePolicy``.
- podcertificaterequests are admitted: upstream's rules were not available to read.
- A walked field of the wrong JSON type refuses with ``malformed object: <path>: ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.admission.pods import (
    STATUS_NOT_BOUND,
    mirror_pod_refusal,
    owner_uid,
    pod_reference_refusal,
    pod_status_refusal,
    spec_node_name,
)
from app.admission.review import AdmissionRequest, parse_admission_review
from app.admission.rules import (
    DEFAULT_OPTIONS,
    AdmissionOptions,
    AudiencePolicy,
    Forbidden,
    NotFound,
    admit_csinode,
    admit_csr,
    admit_lease,
    admit_node,
    admit_pvc,
    admit_resource_slice,
    admit_service_account,
    meta,
    typed,
)
from app.k8s.attributes import node_identity
from app.k8s.goquote import go_quote
from app.k8s.pod_references import FieldError, get_str

__all__ = [
    "DEFAULT_OPTIONS",
    "NOT_IN_STORE",
    "AdmissionLookups",
    "AdmissionOptions",
    "AudiencePolicy",
    "PodRecord",
    "Verdict",
    "admit",
    "check_admission_bytes",
    "describe_request",
]

NOT_IN_STORE = " (no record in the nodeauthz store)"


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    node_name: str  # "" when unbound


class AdmissionLookups(Protocol):
    def pod(self, namespace: str, name: str) -> PodRecord | None: ...

    def node_uid(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class Verdict:
    """``code`` is the HTTP status of a refusal: 403 Forbidden, or 404 for upstream's NotFound."""

    allowed: bool
    message: str = ""
    code: int = 403


ALLOWED = Verdict(True)


def _admit_pod(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    q, op = go_quote(node), r.operation
    if r.sub_resource == "":
        if op == "CREATE":
            pod = typed(r, r.object, "Pod")
            if reason := mirror_pod_refusal(pod, node):
                raise Forbidden(reason)
            node_uid = lookups.node_uid(node)
            if node_uid is None:
                raise NotFound("node", node)
            if owner_uid(pod) != node_uid:
                raise Forbidden(f"node {node} UID mismatch: expected {owner_uid(pod)} got {node_uid}")
            if reason := pod_reference_refusal(pod, node):
                raise Forbidden(reason)
        elif op == "DELETE":
            if r.old_object is not None:
                bound_to = spec_node_name(r.old_object)
            else:
                record = lookups.pod(r.namespace, r.name)
                if record is None:
                    raise NotFound("pod", r.name)
                bound_to = record.node_name
            if bound_to != node:
                raise Forbidden(f"node {q} can only delete pods with spec.nodeName set to itself")
        else:
            raise Forbidden(
                f"unexpected operation {go_quote(op)}, node {q} can only create and delete mirror pods"
            )
    elif r.sub_resource == "status":
        if op != "UPDATE":
            raise Forbidden(f"unexpected operation {go_quote(op)}")
        old = typed(r, r.old_object, "Pod")
        if spec_node_name(old) != node:  # checked before the new object's type, as upstream
            raise Forbidden(f"node {q} {STATUS_NOT_BOUND}")
        if reason := pod_status_refusal(old, typed(r, r.object, "Pod"), node):
            raise Forbidden(reason)
    elif r.sub_resource == "eviction":
        if op != "CREATE":
            raise Forbidden(f"unexpected operation {op}")
        eviction = typed(r, r.object, "Eviction")
        # The URL's pod name wins over the Eviction object's.
        pod_name = r.name or get_str(meta(eviction), "name", "metadata")
        if not pod_name:
            raise Forbidden("could not determine pod from request data")
        record = lookups.pod(r.namespace, pod_name)
        if record is None:
            raise NotFound("pod", pod_name)
        if record.node_name != node:
            raise Forbidden(f"node {node} can only evict pods with spec.nodeName set to itself")
    else:
        raise Forbidden(
            f"unexpected pod subresource {go_quote(r.sub_resource)}, only 'status' and 'eviction' are allowed"
        )


_Rule = Callable[[AdmissionRequest, str, AdmissionLookups, AdmissionOptions], None]

_RULES: dict[tuple[str, str], _Rule] = {
    ("", "pods"): _admit_pod,
    ("", "nodes"): admit_node,
    ("", "persistentvolumeclaims"): admit_pvc,
    ("", "serviceaccounts"): admit_service_account,
    ("coordination.k8s.io", "leases"): admit_lease,
    ("storage.k8s.io", "csinodes"): admit_csinode,
    ("resource.k8s.io", "resourceslices"): admit_resource_slice,
    ("certificates.k8s.io", "certificatesigningrequests"): admit_csr,
}


def _object_name(request: AdmissionRequest) -> str:
    """Upstream ``extractResourceName``: the request's name, else the object's name or generateName."""
    if request.name:
        return request.name
    metadata: Mapping[str, Any] = (request.object or {}).get("metadata") or {}
    for key in ("name", "generateName"):
        value = metadata.get(key) if isinstance(metadata, Mapping) else None
        if isinstance(value, str) and value:
            return value
    return "Unknown"


def _forbidden(request: AdmissionRequest, reason: str) -> Verdict:
    """``apierrors.NewForbidden(groupResource, name, err)``'s message."""
    gr = request.resource
    resource = f"{gr.resource}.{gr.group}" if gr.group else gr.resource
    if not resource:
        return Verdict(False, f"forbidden: {reason}")
    return Verdict(False, f"{resource} {go_quote(_object_name(request))} is forbidden: {reason}")


def admit(
    request: AdmissionRequest, lookups: AdmissionLookups, options: AdmissionOptions = DEFAULT_OPTIONS
) -> Verdict:
    """NodeRestriction's decision on ``request``. Non-nodes and CONNECT are always allowed."""
    if request.operation not in ("CREATE", "UPDATE", "DELETE"):
        return ALLOWED  # upstream's handler registers for these three only
    node, is_node = node_identity(request.username, request.groups)
    if not is_node:
        return ALLOWED
    if not node:
        return _forbidden(request, f"could not determine node from user {go_quote(request.username)}")
    rule = _RULES.get((request.resource.group, request.resource.resource))
    if rule is None:
        return ALLOWED
    try:
        rule(request, node, lookups, options)
    except Forbidden as refused:
        return _forbidden(request, refused.reason)
    except NotFound as missing:
        return Verdict(False, f"{missing}{NOT_IN_STORE}", 404)
    except FieldError as err:
        return _forbidden(request, f"malformed object: {err}")
    return ALLOWED


def describe_request(request: AdmissionRequest) -> str:
    """One line: what was asked and by whom, e.g. ``CREATE pods/eviction ns/web-0 by system:node:n1``."""
    resource = request.resource.resource + (f"/{request.sub_resource}" if request.sub_resource else "")
    if request.resource.group:
        resource += f".{request.resource.group}"
    target = f"{request.namespace}/{request.name}" if request.namespace else request.name
    return f"{request.operation} {resource} {target or '(unnamed)'} by {request.username or '(anonymous)'}"


def check_admission_bytes(
    body: bytes, lookups: AdmissionLookups, options: AdmissionOptions = DEFAULT_OPTIONS
) -> tuple[Verdict, str]:
    """Parse a saved AdmissionReview and decide it: ``(verdict, describe_request(request))``.

    Raises ``AdmissionError`` when the body is not a valid review.
    """
    request = parse_admission_review(body)
    return admit(request, lookups, options), describe_request(request)
