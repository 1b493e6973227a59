"""NodeRestriction on persistentvolumeclaims/status (upstream ``admitPVCStatus``). Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.lookups import AdmissionLookups
from app.admission.objects import meta, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.semantic_diff import semantic_equal, structural_diff
from app.admission.verdict import Forbidden
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_map


def _comparable(pvc: Mapping[str, Any], options: AdmissionOptions) -> dict[str, Any]:
    """The PVC without the fields a node may change (and those upstream ignores)."""
    out = dict(pvc)
    out["metadata"] = {k: v for k, v in meta(pvc).items() if k not in ("resourceVersion", "managedFields")}
    dropped = {"capacity", "conditions"}
    if options.recover_volume_expansion_failure:
        dropped |= {"allocatedResourceStatuses", "allocatedResources"}
    status = get_map(pvc, "status", "") or {}
    out["status"] = {k: v for k, v in status.items() if k not in dropped}
    return out


def admit_pvc(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if r.sub_resource != "status":
        raise Forbidden("may only update PVC status")
    if r.operation != "UPDATE":
        raise Forbidden(f"unexpected operation {go_quote(r.operation)}")
    old = _comparable(typed(r, r.old_object, "PersistentVolumeClaim"), options)
    new = _comparable(typed(r, r.object, "PersistentVolumeClaim"), options)
    if not semantic_equal(old, new):
        raise Forbidden(
            f"node {go_quote(node)} is not allowed to update fields other than status.quantity and "
            f"status.conditions: {structural_diff(old, new)}"
        )
