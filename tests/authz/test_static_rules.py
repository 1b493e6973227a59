"""Static node rules (spec section 3) and RBAC RuleAllows semantics."""

from __future__ import annotations

import pytest

from app.authz.static_rules import (
    BASE_RULES,
    CLUSTER_TRUST_BUNDLE_RULE,
    NODE_RULES,
    PolicyRule,
    node_rules,
    rule_allows,
    rules_allow,
)
from app.k8s.attributes import RequestAttributes


def res(verb: str, resource: str, group: str = "", sub: str = "", name: str = "") -> RequestAttributes:
    return RequestAttributes(
        user="system:node:node0",
        groups=("system:nodes",),
        verb=verb,
        resource_request=True,
        api_group=group,
        resource=resource,
        subresource=sub,
        name=name,
    )


def nonres(verb: str, path: str) -> RequestAttributes:
    return RequestAttributes(user="u", groups=(), verb=verb, resource_request=False, path=path)


# The rendered system:node ClusterRole, spec section 3 table (rows 1-22 then 23, 24, 26).
EXPECTED_RULES = [
    ({"authentication.k8s.io"}, {"tokenreviews"}, {"create"}),
    ({"authorization.k8s.io"}, {"localsubjectaccessreviews", "subjectaccessreviews"}, {"create"}),
    ({""}, {"services"}, {"get", "list", "watch"}),
    ({""}, {"nodes"}, {"create", "get", "list", "watch"}),
    ({""}, {"nodes/status"}, {"patch", "update"}),
    ({""}, {"nodes"}, {"patch", "update"}),
    ({""}, {"events"}, {"create", "patch", "update"}),
    ({""}, {"pods"}, {"get", "list", "watch"}),
    ({""}, {"pods"}, {"create", "delete"}),
    ({""}, {"pods/status"}, {"patch", "update"}),
    ({""}, {"pods/eviction"}, {"create"}),
    ({""}, {"configmaps", "secrets"}, {"get", "list", "watch"}),
    ({""}, {"persistentvolumeclaims", "persistentvolumes"}, {"get"}),
    ({""}, {"endpoints"}, {"get"}),
    ({"certificates.k8s.io"}, {"certificatesigningrequests"}, {"create", "get", "list", "watch"}),
    ({"coordination.k8s.io"}, {"leases"}, {"create", "delete", "get", "patch", "update"}),
    ({"storage.k8s.io"}, {"volumeattachments"}, {"get"}),
    ({""}, {"serviceaccounts/token"}, {"create"}),
    ({""}, {"persistentvolumeclaims/status"}, {"get", "patch", "update"}),
    ({"storage.k8s.io"}, {"csidrivers"}, {"get", "list", "watch"}),
    ({"storage.k8s.io"}, {"csinodes"}, {"create", "delete", "get", "patch", "update"}),
    ({"node.k8s.io"}, {"runtimeclasses"}, {"get", "list", "watch"}),
    ({"resource.k8s.io"}, {"resourceclaims"}, {"get"}),
    ({"resource.k8s.io"}, {"resourceslices"}, {"deletecollection"}),
    ({""}, {"serviceaccounts"}, {"get"}),
]


def test_node_rules_are_upstreams_134_defaults_in_order() -> None:
    got = [(set(r.api_groups), set(r.resources), set(r.verbs)) for r in NODE_RULES]
    assert got == EXPECTED_RULES
    assert len(BASE_RULES) == 22
    assert all(not r.resource_names and not r.non_resource_urls for r in NODE_RULES)


def test_cluster_trust_bundle_rule_only_when_enabled() -> None:
    assert CLUSTER_TRUST_BUNDLE_RULE not in node_rules()
    with_ctb = node_rules(cluster_trust_bundles=True)
    # Upstream order: DRA rules, then ClusterTrustBundle, then serviceaccounts get.
    assert with_ctb[-2] == CLUSTER_TRUST_BUNDLE_RULE
    assert with_ctb[:-2] + with_ctb[-1:] == NODE_RULES
    read_ctb = res("list", "clustertrustbundles", "certificates.k8s.io")
    assert not rules_allow(read_ctb)
    assert rules_allow(read_ctb, with_ctb)


@pytest.mark.parametrize(
    ("attrs", "allowed"),
    [
        (res("get", "services"), True),
        (res("watch", "services"), True),
        (res("delete", "services"), False),
        (res("get", "endpoints"), True),
        (res("list", "endpoints"), False),
        (res("create", "events"), True),
        (res("patch", "events"), True),
        (res("create", "events", "events.k8s.io"), False),
        (res("delete", "events"), False),
        (res("create", "tokenreviews", "authentication.k8s.io"), True),
        (res("create", "subjectaccessreviews", "authorization.k8s.io"), True),
        (res("create", "localsubjectaccessreviews", "authorization.k8s.io"), True),
        (res("create", "selfsubjectaccessreviews", "authorization.k8s.io"), False),
        (res("create", "certificatesigningrequests", "certificates.k8s.io"), True),
        (res("delete", "certificatesigningrequests", "certificates.k8s.io"), False),
        (res("create", "certificatesigningrequests", "certificates.k8s.io", sub="approval"), False),
        (res("watch", "csidrivers", "storage.k8s.io"), True),
        (res("get", "runtimeclasses", "node.k8s.io"), True),
        (res("get", "runtimeclasses"), False),
        (res("list", "nodes"), True),
        (res("delete", "nodes"), False),
        (res("patch", "nodes", sub="status"), True),
        (res("get", "nodes", sub="status"), False),
        (res("get", "nodes", sub="proxy"), False),
        (res("list", "pods"), True),
        (res("update", "pods"), False),
        (res("update", "pods", sub="status"), True),
        (res("create", "pods", sub="eviction"), True),
        (res("get", "pods", sub="log"), False),
        (res("create", "pods", sub="exec"), False),
        (res("create", "serviceaccounts", sub="token"), True),
        (res("create", "serviceaccounts"), False),
        (res("get", "serviceaccounts"), True),
        (res("get", "persistentvolumeclaims", sub="status"), True),
        (res("get", "secrets", "apps"), False),
        (res("get", "deployments", "apps"), False),
        (res("get", "clustertrustbundles", "certificates.k8s.io"), False),
        (nonres("get", "/healthz"), False),
        (nonres("get", "/api"), False),
        (nonres("create", "/"), False),
    ],
)
def test_rules_allow_node_rules(attrs: RequestAttributes, allowed: bool) -> None:
    assert rules_allow(attrs) is allowed


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        # verbs
        (PolicyRule(("*",), ("",), ("pods",)), res("escalate", "pods"), True),
        (PolicyRule(("get",), ("",), ("pods",)), res("list", "pods"), False),
        # API groups: exact or "*"; "" is the core group only
        (PolicyRule(("get",), ("*",), ("pods",)), res("get", "pods", "anything.io"), True),
        (PolicyRule(("get",), ("",), ("pods",)), res("get", "pods", "apps"), False),
        (PolicyRule(("get",), ("apps",), ("pods",)), res("get", "pods"), False),
        # resources: "*" matches any resource and any subresource
        (PolicyRule(("get",), ("",), ("*",)), res("get", "pods", sub="log"), True),
        # exact combined resource
        (PolicyRule(("get",), ("",), ("pods/log",)), res("get", "pods", sub="log"), True),
        (PolicyRule(("get",), ("",), ("pods",)), res("get", "pods", sub="log"), False),
        (PolicyRule(("get",), ("",), ("pods/log",)), res("get", "pods"), False),
        # "*/subresource"
        (PolicyRule(("get",), ("",), ("*/status",)), res("get", "nodes", sub="status"), True),
        (PolicyRule(("get",), ("",), ("*/status",)), res("get", "nodes"), False),
        (PolicyRule(("get",), ("",), ("*/status",)), res("get", "nodes", sub="xstatus"), False),
        (PolicyRule(("get",), ("",), ("*/status",)), res("get", "nodes", sub="tatus"), False),
        # "*/" with no subresource named matches nothing
        (PolicyRule(("get",), ("",), ("*/",)), res("get", "nodes"), False),
        # resource names
        (PolicyRule(("get",), ("",), ("nodes",), ("node0",)), res("get", "nodes", name="node0"), True),
        (PolicyRule(("get",), ("",), ("nodes",), ("node0",)), res("get", "nodes", name="node1"), False),
        (PolicyRule(("get",), ("",), ("nodes",), ("node0",)), res("list", "nodes"), False),
        # non-resource URLs: exact, "*", prefix*
        (PolicyRule(("get",), non_resource_urls=("/healthz",)), nonres("get", "/healthz"), True),
        (PolicyRule(("get",), non_resource_urls=("/healthz",)), nonres("get", "/healthz/etcd"), False),
        (PolicyRule(("get",), non_resource_urls=("*",)), nonres("get", "/anything"), True),
        (PolicyRule(("get",), non_resource_urls=("/api/*",)), nonres("get", "/api/v1"), True),
        (PolicyRule(("get",), non_resource_urls=("/api/*",)), nonres("get", "/apis"), False),
        (PolicyRule(("get",), non_resource_urls=("/healthz",)), nonres("post", "/healthz"), False),
        # a resource rule never matches a non-resource request and vice versa
        (PolicyRule(("*",), ("*",), ("*",)), nonres("get", "/healthz"), False),
        (PolicyRule(("*",), non_resource_urls=("*",)), res("get", "pods"), False),
    ],
)
def test_rule_allows_semantics(rule: PolicyRule, attrs: RequestAttributes, allowed: bool) -> None:
    assert rule_allows(attrs, rule) is allowed
