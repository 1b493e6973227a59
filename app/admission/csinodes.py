"""NodeRestriction on CSINodes (upstream ``admitCSINode``). Pure, no I/O."""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.objects import meta
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden
from app.k8s.json_fields import get_str


def admit_csinode(
    r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions
) -> None:
    if r.operation == "CREATE":
        if r.object is None:
            raise Forbidden("unable to access the object name")
        name = get_str(meta(r.object), "name", "metadata")
    else:
        name = r.name
    if name != node:
        raise Forbidden("can only access CSINode with the same name as the requesting node")
