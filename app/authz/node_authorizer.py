"""The Node authorizer's decision logic (spec section 2). Pure, no I/O.

Two phases, so the caller can consult the graph synchronously or not:
``decide`` returns either a final ``Decision`` or a ``PathQuery`` ("is there a
path from this object to this node?"); ``resolve`` turns the answer into a
``Decision``. Reason strings are upstream's, byte for byte.

Upstream never returns Deny: every refusal is NoOpinion (``allowed=False``), so
later authorizers in the API server's chain may still allow the request.

Upstream feature gates come in as ``FeatureGates`` (``app.k8s.feature_gates``,
defaults of the newest Kubernetes release):
- AuthorizeNodeWithSelectors (GA and locked on since 1.34): pods and nodes are
  subdivided and ResourceSlice list/watch/deletecollection need a
  ``spec.nodeName`` field selector. Off (releases before 1.32 only): pods/nodes
  use the static rules and slice list/watch/deletecollection is allowed unfiltered.
- PodCertificateRequest: the podcertificaterequests rules; off, no opinion.
- KubeletServiceAccountTokenForCredentialProviders (or PodCertificateRequest):
  ``get`` of a service account used by a pod on the node.
- ClusterTrustBundleProjection: adds the clustertrustbundles read rule to the static rules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from app.authz.static_rules import node_rules, rules_allow
from app.k8s import feature_gates as fg
from app.k8s import kinds
from app.k8s.attributes import RequestAttributes, node_identity
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGates

NODE_LEASE_NAMESPACE = "kube-node-lease"
# The field a node must select on (upstream: ResourceSliceSelectorNodeName and the
# literal used for pods and PodCertificateRequests).
NODE_NAME_FIELD = "spec.nodeName"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow (``allowed=True``) or NoOpinion (``allowed=False``) with an optional reason."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PathQuery:
    """Is there a graph path from vertex (kind, namespace, name) to node ``node``?"""

    node: str
    kind: str
    namespace: str
    name: str


ALLOW = Decision(True)
NO_OPINION = Decision(False)


class _Gates(NamedTuple):
    authorize_with_selectors: bool
    pod_certificate_requests: bool
    service_account_get: bool


_Result = Decision | PathQuery


def _no(reason: str) -> Decision:
    return Decision(False, reason)


def no_relationship_reason(node: str) -> str:
    return f"no relationship found between node '{node}' and this object"


def resolve(query: PathQuery, found: bool) -> Decision:
    """The decision once the graph has answered ``query``."""
    return ALLOW if found else _no(no_relationship_reason(query.node))


def selects_node(attrs: RequestAttributes, node: str) -> bool:
    """Does the field selector include ``spec.nodeName=<node>``?

    Upstream requires ``Operator == selection.Equals``. The API server sends both
    ``=`` and ``==`` (which parse to Equals) as ``In`` with exactly one value, and
    itself maps a posted ``In`` with one value back to Equals; ``In`` with several
    values is rejected there. So only ``In`` with one value counts. Field selectors
    have no ``in (...)`` syntax (``spec.nodeName in (node0)`` fails to parse in the
    API server), so such a request arrives without this requirement and is refused.
    """
    for req in attrs.field_selector or ():
        if req.key == NODE_NAME_FIELD and req.operator == "In" and req.values == (node,):
            return True
    return False


# -- upstream's helper procedures ------------------------------------------------


def _authorize(node: str, kind: str, attrs: RequestAttributes) -> _Result:
    if not attrs.name:
        return _no("No Object name found")
    return PathQuery(node, kind, attrs.namespace, attrs.name)


def _authorize_get(node: str, kind: str, attrs: RequestAttributes) -> _Result:
    if attrs.verb != "get":
        return _no("can only get individual resources of this type")
    if attrs.subresource:
        return _no("cannot get subresource")
    return _authorize(node, kind, attrs)


def _authorize_read_namespaced(node: str, kind: str, attrs: RequestAttributes) -> _Result:
    # list/watch pass only when the request names one object (the API server sets
    # the name for a metadata.name= field selector).
    if attrs.verb not in ("get", "list", "watch"):
        return _no("can only read resources of this type")
    if attrs.subresource:
        return _no("cannot read subresource")
    if not attrs.namespace:
        return _no("can only read namespaced object of this type")
    return _authorize(node, kind, attrs)


def _authorize_status_update(node: str, kind: str, attrs: RequestAttributes) -> _Result:
    if attrs.verb not in ("update", "patch"):
        return _no("can only get/update/patch this type")
    if attrs.subresource != "status":
        return _no("can only update status subresource")
    return _authorize(node, kind, attrs)


# -- per-resource handlers -------------------------------------------------------


def _pvc(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if attrs.subresource == "status":
        return _authorize_status_update(node, kinds.PVC, attrs)
    return _authorize_get(node, kinds.PVC, attrs)


def _service_account(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if attrs.verb == "get" and not attrs.subresource:
        if not (gates.service_account_get or gates.pod_certificate_requests):
            return _no("not allowed to get service accounts")
        return _authorize_read_namespaced(node, kinds.SERVICEACCOUNT, attrs)
    if attrs.verb != "create" or not attrs.name:
        return _no("can only create tokens for individual service accounts")
    if attrs.subresource != "token":
        return _no("can only create token subresource of serviceaccount")
    return PathQuery(node, kinds.SERVICEACCOUNT, attrs.namespace, attrs.name)


def _lease(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if attrs.verb not in ("get", "create", "update", "patch", "delete"):
        return _no("can only get, create, update, patch, or delete a node lease")
    if attrs.namespace != NODE_LEASE_NAMESPACE:
        return _no(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
    # The name is unknown on create; NodeRestriction checks it then.
    if attrs.verb != "create" and attrs.name != node:
        return _no("can only access node lease with the same name as the requesting node")
    return ALLOW


def _csinode(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if attrs.verb not in ("get", "create", "update", "patch", "delete"):
        return _no("can only get, create, update, patch, or delete a CSINode")
    if attrs.subresource:
        return _no("cannot authorize CSINode subresources")
    if attrs.verb != "create" and attrs.name != node:
        return _no("can only access CSINode with the same name as the requesting node")
    return ALLOW


def _resource_slice(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if attrs.subresource:
        return _no("cannot authorize ResourceSlice subresources")
    verb = attrs.verb
    if verb == "create":
        return ALLOW  # NodeRestriction checks spec.nodeName of the new object.
    if verb in ("get", "update", "patch", "delete"):
        return _authorize(node, kinds.RESOURCESLICE, attrs)
    if verb in ("watch", "list", "deletecollection"):
        if not gates.authorize_with_selectors or selects_node(attrs, node):
            return ALLOW
        return _no("can only list/watch/deletecollection resourceslices with nodeName field selector")
    return _no(
        "only the following verbs are allowed for a ResourceSlice: "
        "get, watch, list, create, update, patch, delete, deletecollection"
    )


def _node(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if not gates.authorize_with_selectors:
        return None  # static rules
    if attrs.subresource == "":
        if attrs.verb in ("create", "update", "patch"):
            return ALLOW  # NodeRestriction limits a node to its own object.
        if attrs.verb in ("get", "list", "watch"):
            # By name, not graph: a kubelet reads its Node before creating it.
            if attrs.name == node:
                return ALLOW
            if not attrs.name:
                return _no(f"node '{node}' cannot read all nodes, only its own Node object")
            return _no(f"node '{node}' cannot read '{attrs.name}', only its own Node object")
    elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
        return ALLOW
    return NO_OPINION


def _pod(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if not gates.authorize_with_selectors:
        return None  # static rules
    sub, verb = attrs.subresource, attrs.verb
    if sub == "":
        if verb == "get":
            return _authorize_get(node, kinds.POD, attrs)
        if verb in ("list", "watch"):
            if selects_node(attrs, node):
                return ALLOW
            if attrs.name:
                return _authorize(node, kinds.POD, attrs)
            return _no("can only list/watch pods with spec.nodeName field selector")
        if verb in ("create", "delete"):
            return ALLOW  # mirror pods; NodeRestriction limits them to this node
    elif sub == "status" and verb in ("update", "patch"):
        return ALLOW
    elif sub == "eviction" and verb == "create":
        return ALLOW
    return NO_OPINION


def _pod_certificate_request(node: str, attrs: RequestAttributes, gates: _Gates) -> _Result | None:
    if not gates.pod_certificate_requests:
        return None  # static rules (which have no rule for them)
    if attrs.subresource:
        return _no("nodes may not access the status subresource of PodCertificateRequests")
    if attrs.verb == "create":
        return ALLOW  # NodeRestriction checks the new object's node, pod and account.
    if attrs.verb == "get":
        return _authorize(node, kinds.PODCERTIFICATEREQUEST, attrs)
    if attrs.verb in ("list", "watch"):
        if selects_node(attrs, node):
            return ALLOW
        return _no("can only list/watch podcertificaterequests with nodeName field selector")
    return _no(f"nodes may not {attrs.verb} podcertificaterequests")


_Handler = Callable[[str, RequestAttributes, _Gates], _Result | None]

# (API group, resource) -> handler; a handler returning None defers to the static rules.
_SUBDIVIDED: dict[tuple[str, str], _Handler] = {
    ("", "secrets"): lambda n, a, g: _authorize_read_namespaced(n, kinds.SECRET, a),
    ("", "configmaps"): lambda n, a, g: _authorize_read_namespaced(n, kinds.CONFIGMAP, a),
    ("", "persistentvolumeclaims"): _pvc,
    ("", "persistentvolumes"): lambda n, a, g: _authorize_get(n, kinds.PV, a),
    ("resource.k8s.io", "resourceclaims"): lambda n, a, g: _authorize_get(n, kinds.RESOURCECLAIM, a),
    ("storage.k8s.io", "volumeattachments"): lambda n, a, g: _authorize_get(n, kinds.VOLUMEATTACHMENT, a),
    ("", "serviceaccounts"): _service_account,
    ("coordination.k8s.io", "leases"): _lease,
    ("storage.k8s.io", "csinodes"): _csinode,
    ("resource.k8s.io", "resourceslices"): _resource_slice,
    ("", "nodes"): _node,
    ("", "pods"): _pod,
    ("certificates.k8s.io", "podcertificaterequests"): _pod_certificate_request,
}


# The resources the authorizer answers from the graph (bounded label values for metrics).
SUBDIVIDED_RESOURCES: frozenset[str] = frozenset(resource for _group, resource in _SUBDIVIDED)


def decide(attrs: RequestAttributes, gates: FeatureGates = DEFAULT_GATES) -> Decision | PathQuery:
    """Decide ``attrs``, or say which graph question decides it (see module docstring)."""
    node, is_node = node_identity(attrs.user, attrs.groups)
    if not is_node:
        return NO_OPINION
    if not node:
        # Only reachable for the user exactly "system:node:", so %q needs no escaping.
        return _no(f'unknown node for user "{attrs.user}"')
    if attrs.resource_request:
        handler = _SUBDIVIDED.get((attrs.api_group, attrs.resource))
        if handler is not None:
            result = handler(node, attrs, _gates(gates))
            if result is not None:
                return result
    if rules_allow(
        attrs, node_rules(cluster_trust_bundles=gates.enabled(fg.CLUSTER_TRUST_BUNDLE_PROJECTION))
    ):
        return ALLOW
    return NO_OPINION


@functools.lru_cache(maxsize=16)  # a process has one or two FeatureGates; each review asks
def _gates(gates: FeatureGates) -> _Gates:
    return _Gates(
        gates.enabled(fg.AUTHORIZE_NODE_WITH_SELECTORS),
        gates.enabled(fg.POD_CERTIFICATE_REQUEST),
        gates.enabled(fg.KUBELET_SA_TOKEN_FOR_CREDENTIAL_PROVIDERS),
    )


def decide_sync(
    attrs: RequestAttributes, has_path: Callable[[PathQuery], bool], gates: FeatureGates = DEFAULT_GATES
) -> Decision:
    """``decide`` then, if needed, ``resolve`` with ``has_path``. Its exceptions propagate."""
    result = decide(attrs, gates)
    if isinstance(result, PathQuery):
        return resolve(result, has_path(result))
    return result
