"""NodeRestriction on serviceaccounts/token (upstream ``admitServiceAccount``). Pure, no I/O.

With ServiceAccountNodeAudienceRestriction on, the one audience asked for ("" when
none) must be used by the bound pod (``podReferencesAudience``): a projected
service-account token with exactly that audience, or a CSIDriver whose
``tokenRequests`` list it and that one of the pod's volumes uses (inline CSI,
PVC -> PV -> CSI, an ephemeral volume's PVC -> PV -> CSI, an in-tree volume or PV
through CSI translation). Otherwise the API server's authorizer decides (verb
``request-serviceaccounts-token-audience``), as upstream asks its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.lookups import AdmissionLookups, PodRecord
from app.admission.objects import authorize_requester, spec, typed, unauthorized
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden, NotFound
from app.k8s.admission_facts import VIA_CSI, VIA_PVC
from app.k8s.goquote import go_quote
from app.k8s.json_fields import FieldError, get_map, get_str

AUDIENCE_VERB = "request-serviceaccounts-token-audience"


def admit_service_account(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    """serviceaccounts/token CREATE: bound to a pod (by uid) running on this node; its audience in use."""
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
        _check_audience(r, token_spec, record, lookups)


def _requested_audience(token_spec: Mapping[str, Any]) -> str:
    audiences = token_spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise FieldError("spec.audiences", "list of strings")
    if len(audiences) > 1:
        raise Forbidden("node may only request 0 or 1 audiences")
    return audiences[0] if audiences else ""


def _check_audience(
    r: AdmissionRequest, token_spec: Mapping[str, Any], record: PodRecord, lookups: AdmissionLookups
) -> None:
    """Upstream ``validateNodeServiceAccountAudience``."""
    audience = _requested_audience(token_spec)
    found, errors = pod_references_audience(record, audience, lookups)
    if found:
        return
    if errors:
        raise Forbidden(f"error validating audience {go_quote(audience)}: {aggregate(errors)}")
    # resource: the audience (a wildcard allows every one); name: the service account (a rule without
    # resourceNames allows them all).
    answer = authorize_requester(r, lookups, AUDIENCE_VERB, audience, r.name)
    # Like upstream, an authorizer that allows despite an evaluation error still allows.
    if not answer.allowed:
        raise unauthorized(f"audience {go_quote(audience)}", r, answer, "request tokens for this audience")


def pod_references_audience(
    record: PodRecord, audience: str, lookups: AdmissionLookups
) -> tuple[bool, list[str]]:
    """Upstream ``podReferencesAudience``: ``(found, lookup errors)``; errors count only when not found."""
    errors: list[str] = []
    for volume in lookups.pod_facts(record).volumes:
        if audience in volume.audiences:
            return True, []
        driver = ""
        if volume.via == VIA_PVC:
            driver, error = _csi_from_pvc(record.namespace, volume.target, lookups)
            if error:
                errors.append(error)
                continue
        elif volume.via == VIA_CSI:
            driver = volume.target
        if driver:
            audiences = lookups.csidriver_audiences(driver)
            if audiences is None:
                errors.append(f"csidriver.storage.k8s.io {go_quote(driver)} not found")
                continue
            if audience in audiences:
                return True, []
    return False, errors


def _csi_from_pvc(namespace: str, claim: str, lookups: AdmissionLookups) -> tuple[str, str]:
    """Upstream ``getCSIFromPVC``: ``(driver, error)``; driver "" when the PV has none."""
    volume_name = lookups.pvc_volume_name(namespace, claim)
    if volume_name is None:
        return "", f"persistentvolumeclaim {go_quote(claim)} not found"
    driver = lookups.pv_csi_driver(volume_name)
    if driver is None:
        return "", f"persistentvolume {go_quote(volume_name)} not found"
    return driver, ""


def aggregate(errors: list[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: one message as is, several de-duplicated in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
