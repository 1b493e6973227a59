"""NodeRestriction on ResourceSlices (upstream ``admitResourceSlice``). Pure, no I/O."""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.objects import spec, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden
from app.k8s.json_fields import get_str


def admit_resource_slice(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    # Update is the authorizer's (graph) job. A deletecollection reaches
    # admission as one DELETE per slice, each with its oldObject.
    if r.operation == "CREATE":
        if get_str(spec(typed(r, r.object, "ResourceSlice")), "nodeName", "spec") != node:
            raise Forbidden("can only create ResourceSlice with the same NodeName as the requesting node")
    elif r.operation == "DELETE":
        if get_str(spec(typed(r, r.old_object, "ResourceSlice")), "nodeName", "spec") != node:
            raise Forbidden("can only delete ResourceSlice with the same NodeName as the requesting node")
