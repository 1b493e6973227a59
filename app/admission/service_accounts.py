"""NodeRestriction on serviceaccounts/token (upstream ``admitServiceAccount``). Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.lookups import AdmissionLookups
from app.admission.objects import spec, typed
from app.admission.options import AdmissionOptions, AudiencePolicy
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden, NotFound
from app.k8s.goquote import go_quote
from app.k8s.json_fields import FieldError, get_map, get_str


def admit_service_account(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    """serviceaccounts/token CREATE: bound to a pod (by uid) running on this node; 0 or 1 audiences."""
    if r.operation != "CREATE" or r.sub_resource != "token":
        return
    token_spec = spec(typed(r, r.object, "TokenRequest"))
    ref = get_map(token_spec, "boundObjectRef", "spec")
    if ref is None or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        raise Forbidden("node requested token not bound to a pod")
    ref_uid = get_str(ref, "uid", "spec.boundObjectRef")
    if not ref_uid:
        raise Forbidden("node requested token with a pod binding without a uid")
    pod_name = get_str(ref, "name", "spec.boundObjectRef")
    record = lookups.pod(r.namespace, pod_name)
    if record is None:
        raise NotFound("pod", pod_name)
    if ref_uid != record.uid:
        raise Forbidden(
            f"the UID in the bound object reference ({ref_uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated"
        )
    if record.node_name != node:
        raise Forbidden("node requested token bound to a pod scheduled on a different node")
    if options.service_account_node_audience_restriction:
        _check_audiences(token_spec, node, options)


def _check_audiences(token_spec: Mapping[str, Any], node: str, options: AdmissionOptions) -> None:
    audiences = token_spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise FieldError("spec.audiences", "list of strings")
    if len(audiences) > 1:
        raise Forbidden("node may only request 0 or 1 audiences")
    # No audience, or "", is the API server's own: what every pod's default token volume uses.
    if audiences and audiences[0] and options.single_audience is AudiencePolicy.DEFAULT_ONLY:
        raise Forbidden(
            f"audience {go_quote(audiences[0])} not found in pod spec volume, system:node:{node} is not "
            "authorized to request tokens for this audience (nodeauthz cannot read pod volumes; "
            "it allows only the API server's default audience)"
        )
