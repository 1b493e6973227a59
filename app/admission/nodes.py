"""NodeRestriction on nodes and nodes/status (upstream ``admitNode``). Pure, no I/O."""

from __future__ import annotations

from app.admission.lookups import AdmissionLookups
from app.admission.node_labels import forbidden_labels, modified_labels
from app.admission.objects import labels, spec, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.semantic_diff import semantic_equal
from app.admission.verdict import Forbidden
from app.k8s.goquote import go_quote


def admit_node(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    """Own Node only, no configSource, no taint or restricted label changes."""
    q = go_quote(node)
    if r.name != node:
        raise Forbidden(f"node {q} is not allowed to modify node {go_quote(r.name)}")
    if r.operation == "CREATE":
        new = typed(r, r.object, "Node")
        if spec(new).get("configSource") is not None:
            raise Forbidden(f"node {q} is not allowed to create pods with a non-nil configSource")  # sic
        if bad := forbidden_labels(labels(new)):
            raise Forbidden(f"node {q} is not allowed to set the following labels: {', '.join(bad)}")
    elif r.operation == "UPDATE":
        new = typed(r, r.object, "Node")
        old = typed(r, r.old_object, "Node", reported=r.object)
        config = spec(new).get("configSource")
        if config is not None and not semantic_equal(config, spec(old).get("configSource")):
            raise Forbidden(f"node {q} is not allowed to update configSource to a new non-nil configSource")
        if not semantic_equal(spec(new).get("taints"), spec(old).get("taints")):
            raise Forbidden(f"node {q} is not allowed to modify taints")
        if bad := forbidden_labels(modified_labels(labels(new), labels(old))):
            # No node prefix here: upstream's text.
            raise Forbidden(f"is not allowed to modify labels: {', '.join(bad)}")
