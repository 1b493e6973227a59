"""NodeRestriction on nodes and nodes/status (upstream ``admitNode``). Pure, no I/O.

Update checks run in upstream's order: configSource, taints, ownerReferences
(CVE-2025-5187, 1.34.0 and 1.33.4 / 1.32.8 / 1.31.12), labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.admission.lookups import AdmissionLookups
from app.admission.node_labels import forbidden_labels, modified_labels
from app.admission.objects import labels, meta, spec, typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.semantic_diff import semantic_equal
from app.admission.verdict import Forbidden
from app.k8s.goquote import go_quote
from app.k8s.json_fields import get_optional_bool, get_str, iter_objects

# metav1.OwnerReference's fields: strings compare as Go's zero value when absent, the two *bool
# fields do not (unset differs from false).
_OWNER_STRINGS = ("apiVersion", "kind", "name", "uid")
_OWNER_FLAGS = ("controller", "blockOwnerDeletion")


def _owner_references(node: Mapping[str, Any]) -> list[tuple[str | bool | None, ...]]:
    """``metadata.ownerReferences`` as ``apiequality.Semantic.DeepEqual`` sees them (empty == absent)."""
    return [
        tuple(get_str(ref, k, p) for k in _OWNER_STRINGS)
        + tuple(get_optional_bool(ref, k, p) for k in _OWNER_FLAGS)
        for p, ref in iter_objects(meta(node), "ownerReferences", "metadata", nulls_as_empty=True)
    ]


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
        # CVE-2025-5187: an owner reference to a missing object lets the garbage collector delete the
        # Node, which the kubelet then recreates free of its taints and restricted labels.
        if _owner_references(new) != _owner_references(old):
            raise Forbidden(f"node {q} is not allowed to modify ownerReferences")
        if bad := forbidden_labels(modified_labels(labels(new), labels(old))):
            # No node prefix here: upstream's text.
            raise Forbidden(f"is not allowed to modify labels: {', '.join(bad)}")
