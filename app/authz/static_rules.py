"""The static node rules and RBAC rule matching. Pure, no I/O.

``NODE_RULES`` is upstream's ``bootstrappolicy.NodeRules()`` (the ``system:node``
ClusterRole, spec section 3) as rendered with Kubernetes 1.34 default feature gates.
The Node authorizer consults it only for resources it does not subdivide
(services, events, endpoints, CSRs, csidrivers, runtimeclasses, token/access
reviews, and pods/nodes when selector authorization is off). Matching follows
``plugin/pkg/auth/authorizer/rbac`` ``RuleAllows``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.k8s.attributes import RequestAttributes

ALL = "*"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """An RBAC PolicyRule. Empty ``resource_names`` means any name."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


def _rule(verbs: str, groups: str, resources: str) -> PolicyRule:
    # Space-separated lists keep the table below readable; "" is the core group.
    return PolicyRule(
        verbs=tuple(verbs.split()),
        api_groups=tuple("" if g == "core" else g for g in groups.split()),
        resources=tuple(resources.split()),
    )


# Base rules, in upstream's order.
BASE_RULES: tuple[PolicyRule, ...] = (
    _rule("create", "authentication.k8s.io", "tokenreviews"),
    _rule("create", "authorization.k8s.io", "localsubjectaccessreviews subjectaccessreviews"),
    _rule("get list watch", "core", "services"),
    _rule("create get list watch", "core", "nodes"),
    _rule("patch update", "core", "nodes/status"),
    _rule("patch update", "core", "nodes"),
    _rule("create patch update", "core", "events"),
    _rule("get list watch", "core", "pods"),
    _rule("create delete", "core", "pods"),
    _rule("patch update", "core", "pods/status"),
    _rule("create", "core", "pods/eviction"),
    _rule("get list watch", "core", "configmaps secrets"),
    _rule("get", "core", "persistentvolumeclaims persistentvolumes"),
    _rule("get", "core", "endpoints"),
    _rule("create get list watch", "certificates.k8s.io", "certificatesigningrequests"),
    _rule("create delete get patch update", "coordination.k8s.io", "leases"),
    _rule("get", "storage.k8s.io", "volumeattachments"),
    _rule("create", "core", "serviceaccounts/token"),
    _rule("get patch update", "core", "persistentvolumeclaims/status"),
    _rule("get list watch", "storage.k8s.io", "csidrivers"),
    _rule("create delete get patch update", "storage.k8s.io", "csinodes"),
    _rule("get list watch", "node.k8s.io", "runtimeclasses"),
)

# Gated rules, in upstream's order. The two resource.k8s.io rules come with
# DynamicResourceAllocation (GA, on in 1.34; the deletecollection rule lets the
# kubelet clear its own slices at start-up); the serviceaccounts rule with
# KubeletServiceAccountTokenForCredentialProviders (beta, on in 1.34). All three
# name resources the Node authorizer subdivides, so they never decide a request
# here; they are kept so the rendered role matches upstream's.
RESOURCE_CLAIM_RULE = _rule("get", "resource.k8s.io", "resourceclaims")
RESOURCE_SLICE_RULE = _rule("deletecollection", "resource.k8s.io", "resourceslices")
SERVICE_ACCOUNT_GET_RULE = _rule("get", "core", "serviceaccounts")
# ClusterTrustBundle projection (beta, off by default in 1.34). Unlike the rules
# above this one does change decisions: clustertrustbundles are not subdivided.
CLUSTER_TRUST_BUNDLE_RULE = _rule("get list watch", "certificates.k8s.io", "clustertrustbundles")

NODE_RULES: tuple[PolicyRule, ...] = BASE_RULES + (
    RESOURCE_CLAIM_RULE,
    RESOURCE_SLICE_RULE,
    SERVICE_ACCOUNT_GET_RULE,
)
NODE_RULES_WITH_CLUSTER_TRUST_BUNDLES: tuple[PolicyRule, ...] = BASE_RULES + (
    RESOURCE_CLAIM_RULE,
    RESOURCE_SLICE_RULE,
    CLUSTER_TRUST_BUNDLE_RULE,
    SERVICE_ACCOUNT_GET_RULE,
)


def node_rules(*, cluster_trust_bundles: bool = False) -> tuple[PolicyRule, ...]:
    """The node rules for the given gate settings (defaults: Kubernetes 1.34)."""
    return NODE_RULES_WITH_CLUSTER_TRUST_BUNDLES if cluster_trust_bundles else NODE_RULES


def _resource_matches(rule: PolicyRule, combined: str, subresource: str) -> bool:
    for res in rule.resources:
        if res == ALL or res == combined:
            return True
        # "*/status" matches the status subresource of any resource.
        if subresource and res == "*/" + subresource:
            return True
    return False


def _non_resource_url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: RequestAttributes, rule: PolicyRule) -> bool:
    """Upstream's ``RuleAllows``: does this one rule cover the request? Selectors are ignored."""
    verb_ok = ALL in rule.verbs or attrs.verb in rule.verbs
    if not attrs.resource_request:
        return verb_ok and _non_resource_url_matches(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return (
        verb_ok
        and (ALL in rule.api_groups or attrs.api_group in rule.api_groups)
        and _resource_matches(rule, combined, attrs.subresource)
        and (not rule.resource_names or attrs.name in rule.resource_names)
    )


def rules_allow(attrs: RequestAttributes, rules: Iterable[PolicyRule] = NODE_RULES) -> bool:
    """Upstream's ``RulesAllow``: does any rule cover the request?"""
    return any(rule_allows(attrs, rule) for rule in rules)
