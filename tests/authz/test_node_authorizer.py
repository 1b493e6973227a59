"""The Node authorizer's decisions, row by row from spec section 2, with upstream's reason strings."""

from __future__ import annotations

from typing import Any

import pytest

from app.authz.node_authorizer import ALLOW, NO_OPINION, Decision, PathQuery, decide, decide_sync, resolve
from app.k8s.attributes import FieldRequirement, RequestAttributes, node_identity
from app.k8s.feature_gates import DEFAULT_GATES
from app.k8s.feature_gates import parse_feature_gates as gates

# AuthorizeNodeWithSelectors is locked on since 1.34; its off path is upstream's before 1.32.
OLD_RELEASE_NO_SELECTORS = DEFAULT_GATES.with_gate("AuthorizeNodeWithSelectors", False)

NODE = "node0"
NODES = ("system:nodes", "system:authenticated")
RC = RS = "resource.k8s.io"
ST, CERT, COORD = "storage.k8s.io", "certificates.k8s.io", "coordination.k8s.io"


def sel(key: str, op: str, *values: str) -> tuple[FieldRequirement, ...]:
    return (FieldRequirement(key, op, values),)


ON_NODE0 = sel("spec.nodeName", "In", NODE)


def ra(
    verb: str,
    resource: str,
    group: str = "",
    *,
    ns: str = "",
    name: str = "",
    sub: str = "",
    fs: tuple[FieldRequirement, ...] | None = None,
    user: str = f"system:node:{NODE}",
    groups: tuple[str, ...] = NODES,
) -> RequestAttributes:
    return RequestAttributes(
        user=user,
        groups=groups,
        verb=verb,
        resource_request=True,
        namespace=ns,
        api_group=group,
        api_version="v1",
        resource=resource,
        subresource=sub,
        name=name,
        field_selector=fs,
    )


def no(reason: str) -> Decision:
    return Decision(False, reason)


def pq(kind: str, ns: str, name: str) -> PathQuery:
    return PathQuery(NODE, kind, ns, name)


NO_NAME = no("No Object name found")
GET_ONLY = no("can only get individual resources of this type")
NO_GET_SUB = no("cannot get subresource")
READ_ONLY = no("can only read resources of this type")
NO_READ_SUB = no("cannot read subresource")
NAMESPACED = no("can only read namespaced object of this type")

IDENTITY = [
    ("non-node user", ra("get", "services", user="alice", groups=("system:authenticated",)), NO_OPINION),
    ("node user without nodes group", ra("get", "services", groups=("system:authenticated",)), NO_OPINION),
    ("nodes group without node user", ra("get", "services", user="node0"), NO_OPINION),
    ("prefix system:nodes: is not system:node:", ra("get", "services", user="system:nodes:x"), NO_OPINION),
    ("group match is case-sensitive", ra("get", "services", groups=("System:Nodes",)), NO_OPINION),
    (
        "empty node name",
        ra("get", "services", user="system:node:"),
        no('unknown node for user "system:node:"'),
    ),
    (
        "empty name beats static rules",
        ra("create", "tokenreviews", "authentication.k8s.io", user="system:node:"),
        no('unknown node for user "system:node:"'),
    ),
    (
        "node name may contain colons",
        ra("get", "leases", COORD, ns="kube-node-lease", name="a:b", user="system:node:a:b"),
        ALLOW,
    ),
]


def _secret_like(res: str, kind: str) -> list[tuple[str, RequestAttributes, Decision | PathQuery]]:
    return [
        ("get", ra("get", res, ns="ns0", name="s0"), pq(kind, "ns0", "s0")),
        ("list named", ra("list", res, ns="ns0", name="s0"), pq(kind, "ns0", "s0")),
        ("watch named", ra("watch", res, ns="ns0", name="s0"), pq(kind, "ns0", "s0")),
        ("list unnamed", ra("list", res, ns="ns0"), NO_NAME),
        ("get unnamed", ra("get", res, ns="ns0"), NO_NAME),
        ("create", ra("create", res, ns="ns0", name="s0"), READ_ONLY),
        ("delete", ra("delete", res, ns="ns0", name="s0"), READ_ONLY),
        ("subresource", ra("get", res, ns="ns0", name="s0", sub="x"), NO_READ_SUB),
        ("cluster-wide", ra("list", res), NAMESPACED),
        ("no namespace, named", ra("get", res, name="s0"), NAMESPACED),
        ("other group is not subdivided", ra("get", res, "apps", ns="ns0", name="s0"), NO_OPINION),
    ]


SECRETS_AND_CONFIGMAPS = [
    (f"{res}: {rid}", a, e)
    for res, kind in (("secrets", "secret"), ("configmaps", "configmap"))
    for rid, a, e in _secret_like(res, kind)
]

STORAGE = [
    ("pvc get", ra("get", "persistentvolumeclaims", ns="ns0", name="c0"), pq("pvc", "ns0", "c0")),
    ("pvc get unnamed", ra("get", "persistentvolumeclaims", ns="ns0"), NO_NAME),
    ("pvc list", ra("list", "persistentvolumeclaims", ns="ns0"), GET_ONLY),
    ("pvc update", ra("update", "persistentvolumeclaims", ns="ns0", name="c0"), GET_ONLY),
    ("pvc other subresource", ra("get", "persistentvolumeclaims", ns="ns0", name="c0", sub="x"), NO_GET_SUB),
    (
        "pvc status update",
        ra("update", "persistentvolumeclaims", ns="ns0", name="c0", sub="status"),
        pq("pvc", "ns0", "c0"),
    ),
    (
        "pvc status patch",
        ra("patch", "persistentvolumeclaims", ns="ns0", name="c0", sub="status"),
        pq("pvc", "ns0", "c0"),
    ),
    (
        "pvc status get",
        ra("get", "persistentvolumeclaims", ns="ns0", name="c0", sub="status"),
        no("can only get/update/patch this type"),
    ),
    ("pvc status unnamed", ra("patch", "persistentvolumeclaims", ns="ns0", sub="status"), NO_NAME),
    ("pv get", ra("get", "persistentvolumes", name="pv0"), pq("pv", "", "pv0")),
    (
        "pv namespace comes from the request",
        ra("get", "persistentvolumes", ns="ns0", name="pv0"),
        pq("pv", "ns0", "pv0"),
    ),
    ("pv list", ra("list", "persistentvolumes"), GET_ONLY),
    ("pv subresource", ra("get", "persistentvolumes", name="pv0", sub="status"), NO_GET_SUB),
    ("pv unnamed", ra("get", "persistentvolumes"), NO_NAME),
    ("va get", ra("get", "volumeattachments", ST, name="va0"), pq("volumeattachment", "", "va0")),
    ("va watch", ra("watch", "volumeattachments", ST, name="va0"), GET_ONLY),
    ("va subresource", ra("get", "volumeattachments", ST, name="va0", sub="status"), NO_GET_SUB),
    ("claim get", ra("get", "resourceclaims", RC, ns="ns0", name="rc0"), pq("resourceclaim", "ns0", "rc0")),
    ("claim list", ra("list", "resourceclaims", RC, ns="ns0"), GET_ONLY),
    ("claim status", ra("get", "resourceclaims", RC, ns="ns0", name="rc0", sub="status"), NO_GET_SUB),
    ("claim in core group is not subdivided", ra("get", "resourceclaims", ns="ns0", name="rc0"), NO_OPINION),
]

TOKENS_ONLY = no("can only create tokens for individual service accounts")
SERVICE_ACCOUNTS = [
    (
        "token",
        ra("create", "serviceaccounts", ns="ns0", name="sa0", sub="token"),
        pq("serviceaccount", "ns0", "sa0"),
    ),
    ("token unnamed", ra("create", "serviceaccounts", ns="ns0", sub="token"), TOKENS_ONLY),
    (
        "create without subresource",
        ra("create", "serviceaccounts", ns="ns0", name="sa0"),
        no("can only create token subresource of serviceaccount"),
    ),
    (
        "create other subresource",
        ra("create", "serviceaccounts", ns="ns0", name="sa0", sub="x"),
        no("can only create token subresource of serviceaccount"),
    ),
    ("delete", ra("delete", "serviceaccounts", ns="ns0", name="sa0"), TOKENS_ONLY),
    ("list", ra("list", "serviceaccounts", ns="ns0"), TOKENS_ONLY),
    ("get token subresource", ra("get", "serviceaccounts", ns="ns0", name="sa0", sub="token"), TOKENS_ONLY),
    (
        "get (1.34: graph-checked)",
        ra("get", "serviceaccounts", ns="ns0", name="sa0"),
        pq("serviceaccount", "ns0", "sa0"),
    ),
    ("get unnamed", ra("get", "serviceaccounts", ns="ns0"), NO_NAME),
    ("get cluster-wide", ra("get", "serviceaccounts", name="sa0"), NAMESPACED),
]

OTHER_NODE_LEASE = no("can only access node lease with the same name as the requesting node")
OTHER_CSINODE = no("can only access CSINode with the same name as the requesting node")
LEASES_AND_CSINODES = [
    ("lease get own", ra("get", "leases", COORD, ns="kube-node-lease", name=NODE), ALLOW),
    ("lease update own", ra("update", "leases", COORD, ns="kube-node-lease", name=NODE), ALLOW),
    ("lease patch own", ra("patch", "leases", COORD, ns="kube-node-lease", name=NODE), ALLOW),
    ("lease delete own", ra("delete", "leases", COORD, ns="kube-node-lease", name=NODE), ALLOW),
    ("lease create unnamed", ra("create", "leases", COORD, ns="kube-node-lease"), ALLOW),
    ("lease create other name", ra("create", "leases", COORD, ns="kube-node-lease", name="node1"), ALLOW),
    (
        "lease subresource is not checked",
        ra("get", "leases", COORD, ns="kube-node-lease", name=NODE, sub="x"),
        ALLOW,
    ),
    ("lease get other", ra("get", "leases", COORD, ns="kube-node-lease", name="node1"), OTHER_NODE_LEASE),
    ("lease get unnamed", ra("get", "leases", COORD, ns="kube-node-lease"), OTHER_NODE_LEASE),
    (
        "lease other namespace",
        ra("get", "leases", COORD, ns="default", name=NODE),
        no('can only access leases in the "kube-node-lease" system namespace'),
    ),
    (
        "lease list",
        ra("list", "leases", COORD, ns="kube-node-lease"),
        no("can only get, create, update, patch, or delete a node lease"),
    ),
    ("csinode get own", ra("get", "csinodes", ST, name=NODE), ALLOW),
    ("csinode delete own", ra("delete", "csinodes", ST, name=NODE), ALLOW),
    ("csinode create any", ra("create", "csinodes", ST, name="node1"), ALLOW),
    ("csinode update other", ra("update", "csinodes", ST, name="node1"), OTHER_CSINODE),
    (
        "csinode list",
        ra("list", "csinodes", ST),
        no("can only get, create, update, patch, or delete a CSINode"),
    ),
    (
        "csinode subresource",
        ra("get", "csinodes", ST, name=NODE, sub="status"),
        no("cannot authorize CSINode subresources"),
    ),
]

SLICE_SELECTOR = no("can only list/watch/deletecollection resourceslices with nodeName field selector")
RESOURCE_SLICES = [
    ("create", ra("create", "resourceslices", RS), ALLOW),
    *[
        (v, ra(v, "resourceslices", RS, name="s0"), pq("resourceslice", "", "s0"))
        for v in ("get", "update", "patch", "delete")
    ],
    ("get unnamed", ra("get", "resourceslices", RS), NO_NAME),
    *[
        (f"{v} own", ra(v, "resourceslices", RS, fs=ON_NODE0), ALLOW)
        for v in ("list", "watch", "deletecollection")
    ],
    *[
        (f"{v} unfiltered", ra(v, "resourceslices", RS), SLICE_SELECTOR)
        for v in ("list", "watch", "deletecollection")
    ],
    ("other node", ra("list", "resourceslices", RS, fs=sel("spec.nodeName", "In", "node1")), SLICE_SELECTOR),
    ("1.31 field name", ra("list", "resourceslices", RS, fs=sel("nodeName", "In", NODE)), SLICE_SELECTOR),
    ("NotIn", ra("list", "resourceslices", RS, fs=sel("spec.nodeName", "NotIn", NODE)), SLICE_SELECTOR),
    (
        "In with two values",
        ra("list", "resourceslices", RS, fs=sel("spec.nodeName", "In", NODE, "node1")),
        SLICE_SELECTOR,
    ),
    ("In with no value", ra("list", "resourceslices", RS, fs=sel("spec.nodeName", "In")), SLICE_SELECTOR),
    (
        "lowercase operator",
        ra("list", "resourceslices", RS, fs=sel("spec.nodeName", "in", NODE)),
        SLICE_SELECTOR,
    ),
    (
        "one of several requirements",
        ra("watch", "resourceslices", RS, fs=sel("spec.driver", "In", "d") + ON_NODE0),
        ALLOW,
    ),
    (
        "subresource",
        ra("get", "resourceslices", RS, name="s0", sub="status"),
        no("cannot authorize ResourceSlice subresources"),
    ),
    (
        "subresource on list",
        ra("list", "resourceslices", RS, sub="x", fs=ON_NODE0),
        no("cannot authorize ResourceSlice subresources"),
    ),
    (
        "other verb",
        ra("escalate", "resourceslices", RS, name="s0"),
        no(
            "only the following verbs are allowed for a ResourceSlice: "
            "get, watch, list, create, update, patch, delete, deletecollection"
        ),
    ),
]

NODES_ON = [
    *[(f"{v} any", ra(v, "nodes", name="node1"), ALLOW) for v in ("create", "update", "patch")],
    *[(f"{v} own", ra(v, "nodes", name=NODE), ALLOW) for v in ("get", "list", "watch")],
    (
        "get other",
        ra("get", "nodes", name="node1"),
        no("node 'node0' cannot read 'node1', only its own Node object"),
    ),
    ("list all", ra("list", "nodes"), no("node 'node0' cannot read all nodes, only its own Node object")),
    ("watch all", ra("watch", "nodes"), no("node 'node0' cannot read all nodes, only its own Node object")),
    ("delete own", ra("delete", "nodes", name=NODE), NO_OPINION),
    ("status update", ra("update", "nodes", name="node1", sub="status"), ALLOW),
    ("status patch", ra("patch", "nodes", name=NODE, sub="status"), ALLOW),
    ("status get", ra("get", "nodes", name=NODE, sub="status"), NO_OPINION),
    ("proxy", ra("get", "nodes", name=NODE, sub="proxy"), NO_OPINION),
]

POD_SELECTOR = no("can only list/watch pods with spec.nodeName field selector")
PODS_ON = [
    ("get", ra("get", "pods", ns="ns0", name="p0"), pq("pod", "ns0", "p0")),
    ("get unnamed", ra("get", "pods", ns="ns0"), NO_NAME),
    ("list own", ra("list", "pods", fs=ON_NODE0), ALLOW),
    ("watch own", ra("watch", "pods", ns="ns0", fs=ON_NODE0), ALLOW),
    ("list unfiltered", ra("list", "pods"), POD_SELECTOR),
    ("watch other node", ra("watch", "pods", fs=sel("spec.nodeName", "In", "node1")), POD_SELECTOR),
    ("list NotIn", ra("list", "pods", fs=sel("spec.nodeName", "NotIn", NODE)), POD_SELECTOR),
    ("list named", ra("list", "pods", ns="ns0", name="p0"), pq("pod", "ns0", "p0")),
    (
        "watch named, other node selector",
        ra("watch", "pods", ns="ns0", name="p0", fs=sel("spec.nodeName", "In", "node1")),
        pq("pod", "ns0", "p0"),
    ),
    ("create", ra("create", "pods", ns="ns0"), ALLOW),
    ("delete", ra("delete", "pods", ns="ns0", name="p0"), ALLOW),
    ("update", ra("update", "pods", ns="ns0", name="p0"), NO_OPINION),
    ("deletecollection", ra("deletecollection", "pods", ns="ns0", fs=ON_NODE0), NO_OPINION),
    ("status update", ra("update", "pods", ns="ns0", name="p0", sub="status"), ALLOW),
    ("status patch", ra("patch", "pods", ns="ns0", name="p0", sub="status"), ALLOW),
    ("status get", ra("get", "pods", ns="ns0", name="p0", sub="status"), NO_OPINION),
    ("eviction create", ra("create", "pods", ns="ns0", name="p0", sub="eviction"), ALLOW),
    ("eviction get", ra("get", "pods", ns="ns0", name="p0", sub="eviction"), NO_OPINION),
    ("log", ra("get", "pods", ns="ns0", name="p0", sub="log"), NO_OPINION),
    ("exec", ra("create", "pods", ns="ns0", name="p0", sub="exec"), NO_OPINION),
]

STATIC_RULES = [
    ("services", ra("list", "services"), ALLOW),
    ("endpoints get", ra("get", "endpoints", ns="ns0", name="e0"), ALLOW),
    ("endpoints list", ra("list", "endpoints", ns="ns0"), NO_OPINION),
    ("events", ra("create", "events", ns="ns0"), ALLOW),
    ("events.k8s.io events", ra("create", "events", "events.k8s.io", ns="ns0"), NO_OPINION),
    ("tokenreviews", ra("create", "tokenreviews", "authentication.k8s.io"), ALLOW),
    ("subjectaccessreviews", ra("create", "subjectaccessreviews", "authorization.k8s.io"), ALLOW),
    ("csr", ra("create", "certificatesigningrequests", CERT), ALLOW),
    ("csr delete", ra("delete", "certificatesigningrequests", CERT, name="c"), NO_OPINION),
    ("csidrivers", ra("watch", "csidrivers", ST), ALLOW),
    ("runtimeclasses", ra("get", "runtimeclasses", "node.k8s.io", name="rc"), ALLOW),
    ("clustertrustbundles (off in 1.34)", ra("list", "clustertrustbundles", CERT), NO_OPINION),
    ("deployments", ra("list", "deployments", "apps"), NO_OPINION),
    ("namespaces", ra("get", "namespaces", name="default"), NO_OPINION),
]

NON_RESOURCE = [
    ("healthz", RequestAttributes(f"system:node:{NODE}", NODES, "get", False, path="/healthz"), NO_OPINION),
    (
        "non-resource with resource fields set",
        RequestAttributes(
            f"system:node:{NODE}",
            NODES,
            "get",
            False,
            namespace="ns0",
            resource="secrets",
            name="s0",
            path="/api",
        ),
        NO_OPINION,
    ),
]

ROWS = (
    IDENTITY
    + SECRETS_AND_CONFIGMAPS
    + STORAGE
    + SERVICE_ACCOUNTS
    + LEASES_AND_CSINODES
    + [(f"resourceslices: {i}", a, e) for i, a, e in RESOURCE_SLICES]
    + [(f"nodes: {i}", a, e) for i, a, e in NODES_ON]
    + [(f"pods: {i}", a, e) for i, a, e in PODS_ON]
    + STATIC_RULES
    + NON_RESOURCE
)


@pytest.mark.parametrize(("attrs", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_decide_default_gates(attrs: RequestAttributes, expected: Decision | PathQuery) -> None:
    assert decide(attrs) == expected


SELECTORS_OFF = [
    ("list nodes", ra("list", "nodes"), ALLOW),
    ("get other node", ra("get", "nodes", name="node1"), ALLOW),
    ("delete node", ra("delete", "nodes", name=NODE), NO_OPINION),
    ("node status patch", ra("patch", "nodes", name="node1", sub="status"), ALLOW),
    ("node proxy", ra("get", "nodes", name=NODE, sub="proxy"), NO_OPINION),
    ("list all pods", ra("list", "pods"), ALLOW),
    ("get any pod, no graph", ra("get", "pods", ns="ns0", name="p0"), ALLOW),
    ("update pod", ra("update", "pods", ns="ns0", name="p0"), NO_OPINION),
    ("pod status", ra("patch", "pods", ns="ns0", name="p0", sub="status"), ALLOW),
    ("pod eviction", ra("create", "pods", ns="ns0", name="p0", sub="eviction"), ALLOW),
    ("pod log", ra("get", "pods", ns="ns0", name="p0", sub="log"), NO_OPINION),
    *[
        (f"unfiltered slice {v}", ra(v, "resourceslices", RS), ALLOW)
        for v in ("list", "watch", "deletecollection")
    ],
    (
        "slice get still graph-checked",
        ra("get", "resourceslices", RS, name="s0"),
        pq("resourceslice", "", "s0"),
    ),
    (
        "slice subresource still refused",
        ra("list", "resourceslices", RS, sub="x"),
        no("cannot authorize ResourceSlice subresources"),
    ),
    ("secrets unchanged", ra("list", "secrets", ns="ns0"), NO_NAME),
]


@pytest.mark.parametrize(
    ("attrs", "expected"), [r[1:] for r in SELECTORS_OFF], ids=[r[0] for r in SELECTORS_OFF]
)
def test_decide_without_selector_authorization(
    attrs: RequestAttributes, expected: Decision | PathQuery
) -> None:
    assert decide(attrs, OLD_RELEASE_NO_SELECTORS) == expected


PCR = "podcertificaterequests"
PCR_ON = [
    ("create", ra("create", PCR, CERT, ns="ns0"), ALLOW),
    ("get", ra("get", PCR, CERT, ns="ns0", name="r0"), pq("podcertificaterequest", "ns0", "r0")),
    ("get unnamed", ra("get", PCR, CERT, ns="ns0"), NO_NAME),
    ("list own", ra("list", PCR, CERT, fs=ON_NODE0), ALLOW),
    (
        "watch other node",
        ra("watch", PCR, CERT, fs=sel("spec.nodeName", "In", "node1")),
        no("can only list/watch podcertificaterequests with nodeName field selector"),
    ),
    (
        "list unfiltered",
        ra("list", PCR, CERT),
        no("can only list/watch podcertificaterequests with nodeName field selector"),
    ),
    (
        "delete",
        ra("delete", PCR, CERT, ns="ns0", name="r0"),
        no("nodes may not delete podcertificaterequests"),
    ),
    (
        "status update",
        ra("update", PCR, CERT, ns="ns0", name="r0", sub="status"),
        no("nodes may not access the status subresource of PodCertificateRequests"),
    ),
]


@pytest.mark.parametrize(("attrs", "expected"), [r[1:] for r in PCR_ON], ids=[r[0] for r in PCR_ON])
def test_pod_certificate_requests_when_enabled(
    attrs: RequestAttributes, expected: Decision | PathQuery
) -> None:
    assert decide(attrs) == expected  # on by default since 1.37


@pytest.mark.parametrize("verb", ["create", "get", "list"])
def test_pod_certificate_requests_gate_off_falls_to_static_rules(verb: str) -> None:
    attrs = ra(verb, PCR, CERT, ns="ns0", name="r0" if verb == "get" else "", fs=ON_NODE0)
    assert decide(attrs, gates("PodCertificateRequest=false")) == NO_OPINION


def test_service_account_get_gate() -> None:
    get_sa = ra("get", "serviceaccounts", ns="ns0", name="sa0")
    both_off = gates("KubeletServiceAccountTokenForCredentialProviders=false,PodCertificateRequest=false")
    assert decide(get_sa, both_off) == no("not allowed to get service accounts")
    # Upstream: allowed under KubeletServiceAccountTokenForCredentialProviders or PodCertificateRequest.
    one_on = gates("KubeletServiceAccountTokenForCredentialProviders=false")
    assert decide(get_sa, one_on) == pq("serviceaccount", "ns0", "sa0")
    token = ra("create", "serviceaccounts", ns="ns0", name="sa0", sub="token")
    assert decide(token, both_off) == pq("serviceaccount", "ns0", "sa0")


def test_cluster_trust_bundles_gate() -> None:
    attrs = ra("watch", "clustertrustbundles", CERT)
    assert decide(attrs) == NO_OPINION
    assert decide(attrs, gates("ClusterTrustBundleProjection=true")) == ALLOW


def test_resolve_texts() -> None:
    query = PathQuery("node0", "secret", "ns0", "s0")
    assert resolve(query, True) == Decision(True, "")
    assert resolve(query, False) == Decision(
        False, "no relationship found between node 'node0' and this object"
    )
    odd = PathQuery("a:b", "pv", "", "pv0")
    assert resolve(odd, False).reason == "no relationship found between node 'a:b' and this object"


def test_decide_sync_asks_the_graph_only_when_needed() -> None:
    asked: list[PathQuery] = []

    def has_path(q: PathQuery) -> bool:
        asked.append(q)
        return q.name == "mine"

    assert decide_sync(ra("get", "secrets", ns="ns0", name="mine"), has_path) == ALLOW
    denied = decide_sync(ra("get", "secrets", ns="ns0", name="theirs"), has_path)
    assert denied == no("no relationship found between node 'node0' and this object")
    assert decide_sync(ra("get", "services"), has_path) == ALLOW
    assert decide_sync(ra("list", "pods"), has_path, OLD_RELEASE_NO_SELECTORS) == ALLOW
    assert [q.name for q in asked] == ["mine", "theirs"]


def test_allow_never_carries_a_reason() -> None:
    results: list[Any] = [decide(a) for _, a, _ in ROWS] + [resolve(pq("pod", "n", "p"), True)]
    assert all(r.reason == "" for r in results if isinstance(r, Decision) and r.allowed)


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        ("system:node:node0", ["system:nodes"], ("node0", True)),
        ("system:node:node0", ("system:authenticated", "system:nodes"), ("node0", True)),
        ("system:node:", ["system:nodes"], ("", True)),
        ("system:node:a:b", ["system:nodes"], ("a:b", True)),
        ("system:node:node0", [], ("", False)),
        ("system:node:node0", ["system:node"], ("", False)),
        ("system:node", ["system:nodes"], ("", False)),
        ("System:Node:node0", ["system:nodes"], ("", False)),
        ("", ["system:nodes"], ("", False)),
        ("alice", ["system:nodes"], ("", False)),
    ],
)
def test_node_identity(user: str, groups: list[str], expected: tuple[str, bool]) -> None:
    assert node_identity(user, groups) == expected
