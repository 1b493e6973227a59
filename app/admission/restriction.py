"""The NodeRestriction admission plugin, as a pure function of an AdmissionRequest. No I/O.

Reproduces upstream's ``plugin/pkg/admission/noderestriction`` decision for
decision (spec node-restriction.md): ``admit`` finds the node, dispatches to
the rule for the request's resource (one module per object family), and turns
the rule's refusal into upstream's full text,
``<resource>[.<group>] "<name>" is forbidden: <reason>`` (``admission.NewForbidden``);
the apiserver prefixes ``admission webhook "<name>" denied the request: ``.

Differences forced by running as a webhook over nodeauthz's store:
- Existing pods and nodes come from ``AdmissionLookups`` (namespace, name, uid,
  nodeName only). A miss gives upstream's lister text, ``pod "<name>" not found``
  or ``node "<name>" not found``, followed by ``NOT_IN_STORE``, with HTTP 404.
  A pod DELETE reads the pod from the review's ``oldObject`` (the apiserver's
  current copy) and looks it up only when that is absent.
- ServiceAccountNodeAudienceRestriction and podcertificaterequests read the
  facts the store keeps of pods, PVCs, PVs, CSIDrivers and service accounts
  (``app.k8s.admission_facts``), and ask the API server's authorizer through
  ``AdmissionLookups.authorize`` (a SubjectAccessReview) where upstream asks its own.
- Upstream's 1.33+ fixes that need only the request are in: node ownerReferences
  (CVE-2025-5187), mirror pods' API references (``app.k8s.api_references``) and
  the extended resource claim status.
- A walked field of the wrong JSON type refuses with ``malformed object: <path>: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.certificate_signing_requests import admit_csr
from app.admission.csinodes import admit_csinode
from app.admission.leases import admit_lease
from app.admission.lookups import AdmissionLookups
from app.admission.nodes import admit_node
from app.admission.objects import Rule
from app.admission.options import DEFAULT_OPTIONS, AdmissionOptions
from app.admission.persistent_volume_claims import admit_pvc
from app.admission.pod_certificate_requests import admit_pod_certificate_request
from app.admission.pods import admit_pod
from app.admission.resource_slices import admit_resource_slice
from app.admission.review import AdmissionRequest, parse_admission_review
from app.admission.service_accounts import admit_service_account
from app.admission.verdict import ALLOWED, NOT_IN_STORE, Forbidden, NotFound, Retryable, Verdict
from app.k8s.attributes import node_identity
from app.k8s.goquote import go_quote
from app.k8s.json_fields import FieldError

_RULES: dict[tuple[str, str], Rule] = {
    ("", "pods"): admit_pod,
    ("", "nodes"): admit_node,
    ("", "persistentvolumeclaims"): admit_pvc,
    ("", "serviceaccounts"): admit_service_account,
    ("coordination.k8s.io", "leases"): admit_lease,
    ("storage.k8s.io", "csinodes"): admit_csinode,
    ("resource.k8s.io", "resourceslices"): admit_resource_slice,
    ("certificates.k8s.io", "certificatesigningrequests"): admit_csr,
    ("certificates.k8s.io", "podcertificaterequests"): admit_pod_certificate_request,
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
    except Retryable as lag:
        return Verdict(False, lag.message + (NOT_IN_STORE if lag.code == 404 else ""), lag.code)
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
