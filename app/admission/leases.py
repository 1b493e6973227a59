"""NodeRestriction on node leases (upstream ``admitLease``). Pure, no I/O."""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.objects import meta, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_str

NODE_LEASE_NAMESPACE = "kube-node-lease"


def admit_lease(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if r.namespace != NODE_LEASE_NAMESPACE:
        raise Forbidden(f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace")
    if r.operation == "CREATE":
        name = get_str(meta(typed(r, r.object, "Lease")), "name", "metadata")
    else:
        name = r.name
    if name != node:
        raise Forbidden("can only access node lease with the same name as the requesting node")
