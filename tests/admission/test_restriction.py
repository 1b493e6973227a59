"""NodeRestriction rules, each allowed and refused with upstream's text.

Reviews are shaped as kube-apiserver sends them: full objects, dryRun, options.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.admission.lookups import AccessAnswer, AccessQuestion, PodRecord
from app.admission.options import AdmissionOptions
from app.admission.restriction import admit, check_admission_bytes
from app.admission.review import AdmissionError, parse_admission_review, render_admission_response
from app.admission.verdict import Verdict
from app.k8s.admission_facts import PodFacts, VolumeFact, pod_facts

NODE = "mynode"
NODE_UID = "mynode-uid"
NODE_USER = f"system:node:{NODE}"
NODE_GROUPS = ["system:nodes", "system:authenticated"]


# What every pod the API server admits mounts: kube-api-access-*, a projected token with no audience.
DEFAULT_TOKEN_VOLUME = VolumeFact(audiences=("",))


class Store:
    """In-memory AdmissionLookups; ``access`` answers the authorizer's questions (key: verb, resource, name)."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.facts: dict[tuple[str, str], PodFacts] = {}
        self.nodes: dict[str, str] = {NODE: NODE_UID, "othernode": "othernode-uid"}
        self.service_accounts: dict[tuple[str, str], str] = {}
        self.pvcs: dict[tuple[str, str], str] = {}
        self.pvs: dict[str, str] = {}
        self.csidrivers: dict[str, tuple[str, ...]] = {}
        self.access: dict[tuple[str, str, str], AccessAnswer] = {}
        self.questions: list[AccessQuestion] = []
        self.add_pod("ns", "mypod", NODE)
        self.add_pod("ns", "otherpod", "othernode")
        self.add_pod("ns", "unboundpod", "")

    def add_pod(self, namespace: str, name: str, node: str, obj: dict[str, Any] | None = None) -> None:
        """A stored pod; ``obj`` (raw JSON) gives its facts, else a plain pod with the default token volume."""
        self.pods[(namespace, name)] = PodRecord(namespace, name, f"{name}-uid", node)
        facts = pod_facts(obj) if obj is not None else PodFacts("default", False, (DEFAULT_TOKEN_VOLUME,), ())
        self.facts[(namespace, name)] = facts

    def pod(self, namespace: str, name: str) -> PodRecord | None:
        return self.pods.get((namespace, name))

    def node_uid(self, name: str) -> str | None:
        return self.nodes.get(name)

    def pod_facts(self, record: PodRecord) -> PodFacts:
        return self.facts[(record.namespace, record.name)]

    def service_account_uid(self, namespace: str, name: str) -> str | None:
        return self.service_accounts.get((namespace, name))

    def pvc_volume_name(self, namespace: str, name: str) -> str | None:
        return self.pvcs.get((namespace, name))

    def pv_csi_driver(self, name: str) -> str | None:
        return self.pvs.get(name)

    def csidriver_audiences(self, name: str) -> tuple[str, ...] | None:
        return self.csidrivers.get(name)

    def authorize(self, question: AccessQuestion) -> AccessAnswer:
        self.questions.append(question)
        return self.access.get((question.verb, question.resource, question.name), AccessAnswer(False))


GVK = {
    "pods": ("", "v1", "Pod"),
    "nodes": ("", "v1", "Node"),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim"),
    "serviceaccounts": ("", "v1", "ServiceAccount"),
    "leases": ("coordination.k8s.io", "v1", "Lease"),
    "csinodes": ("storage.k8s.io", "v1", "CSINode"),
    "resourceslices": ("resource.k8s.io", "v1", "ResourceSlice"),
    "certificatesigningrequests": ("certificates.k8s.io", "v1", "CertificateSigningRequest"),
    "podcertificaterequests": ("certificates.k8s.io", "v1beta1", "PodCertificateRequest"),
    "configmaps": ("", "v1", "ConfigMap"),
}
SUB_KINDS = {
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def review(
    operation: str,
    resource: str,
    *,
    sub: str = "",
    name: str = "",
    namespace: str = "",
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    user: str = NODE_USER,
    groups: list[str] | None = None,
) -> bytes:
    """An admission.k8s.io/v1 review as kube-apiserver sends it (omitempty fields left out when empty)."""
    group, version, kind = SUB_KINDS.get(sub, GVK[resource])
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": GVK[resource][0], "version": GVK[resource][1], "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": GVK[resource][0], "version": GVK[resource][1], "resource": resource},
        "operation": operation,
        "userInfo": {"username": user, "groups": NODE_GROUPS if groups is None else groups},
        "dryRun": False,
    }
    if sub:
        request["subResource"] = request["requestSubResource"] = sub
    if name:
        request["name"] = name
    if namespace:
        request["namespace"] = namespace
    if obj is not None:
        request["object"] = obj
    if old is not None:
        request["oldObject"] = old
    if operation in OPTIONS_KIND:
        request["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": OPTIONS_KIND[operation]}
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


def decide(body: bytes, store: Store | None = None, options: AdmissionOptions | None = None) -> Verdict:
    verdict, _ = check_admission_bytes(body, store or Store(), options or AdmissionOptions())
    return verdict


def assert_allowed(body: bytes, store: Store | None = None, options: AdmissionOptions | None = None) -> None:
    verdict = decide(body, store, options)
    assert verdict == Verdict(True), verdict.message


def assert_refused(
    body: bytes,
    message: str,
    store: Store | None = None,
    options: AdmissionOptions | None = None,
    code: int = 403,
) -> None:
    verdict = decide(body, store, options)
    assert not verdict.allowed
    assert verdict.message == message
    assert verdict.code == code


# ---- objects -------------------------------------------------------------------------------


def pod(name: str, node: str = NODE, *, mirror: bool = False, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"{name}-uid", "resourceVersion": "7"}
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc123"}
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": f"{node}-uid", "controller": True}
        ]
    body = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body, "status": {"phase": "Running"}}


def node_obj(name: str = NODE, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"{name}-uid"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": {}}


def create_mirror(p: dict[str, Any]) -> bytes:
    return review("CREATE", "pods", name=p["metadata"]["name"], namespace="ns", obj=p)


# ---- identity and dispatch -----------------------------------------------------------------


def test_non_nodes_are_not_restricted() -> None:
    assert_allowed(review("CREATE", "pods", name="x", namespace="ns", obj=pod("x", "othernode"), user="bob"))
    # A node's name without the system:nodes group is not a node.
    assert_allowed(review("CREATE", "pods", name="x", namespace="ns", obj=pod("x", "othernode"), groups=[]))


def test_node_with_empty_name_is_refused() -> None:
    body = review("DELETE", "pods", name="mypod", namespace="ns", user="system:node:")
    assert_refused(body, 'pods "mypod" is forbidden: could not determine node from user "system:node:"')


def test_connect_and_unrestricted_resources_pass() -> None:
    assert_allowed(review("CONNECT", "pods", sub="exec", name="otherpod", namespace="ns"))
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}
    assert_allowed(review("CREATE", "configmaps", name="c", namespace="ns", obj=cm))


def test_admit_accepts_a_parsed_request_directly() -> None:
    request = parse_admission_review(review("DELETE", "pods", name="otherpod", namespace="ns"))
    assert admit(request, Store()) == Verdict(
        False,
        'pods "otherpod" is forbidden: node "mynode" can only delete pods with spec.nodeName set to itself',
    )


def test_dry_run_does_not_change_the_decision() -> None:
    review_doc = json.loads(
        review("DELETE", "pods", name="otherpod", namespace="ns", old=pod("otherpod", "othernode"))
    )
    review_doc["request"]["dryRun"] = True
    verdict = decide(json.dumps(review_doc).encode())
    assert verdict.message.endswith('node "mynode" can only delete pods with spec.nodeName set to itself')


def test_check_admission_bytes_describes_the_request() -> None:
    body = review("CREATE", "pods", sub="eviction", name="mypod", namespace="ns", obj=eviction("mypod"))
    verdict, summary = check_admission_bytes(body, Store())
    assert verdict.allowed
    assert summary == "CREATE pods/eviction ns/mypod by system:node:mynode"
    with pytest.raises(AdmissionError):
        check_admission_bytes(b"{}", Store())


# ---- mirror pods ---------------------------------------------------------------------------


def test_mirror_pod_bound_to_self_is_allowed() -> None:
    assert_allowed(create_mirror(pod("static-web", mirror=True)))


MIRROR_PREFIX = 'pods "static-web" is forbidden: '


def _mutated_mirror(change: str) -> dict[str, Any]:
    p = pod("static-web", mirror=True)
    owner = p["metadata"]["ownerReferences"][0]
    if change == "not-mirror":
        del p["metadata"]["annotations"]
    elif change == "other-node":
        p["spec"]["nodeName"] = "othernode"
    elif change == "unbound":
        del p["spec"]["nodeName"]
    elif change == "two-owners":
        p["metadata"]["ownerReferences"].append(dict(owner))
    elif change == "no-owner":
        del p["metadata"]["ownerReferences"]
    elif change == "owner-kind":
        owner["kind"] = "ReplicaSet"
    elif change == "owner-version":
        owner["apiVersion"] = "apps/v1"
    elif change == "owner-name":
        owner["name"] = "othernode"
    elif change == "not-controller":
        owner["controller"] = False
    elif change == "controller-unset":
        del owner["controller"]
    elif change == "block-deletion":
        owner["blockOwnerDeletion"] = True
    elif change == "uid":
        owner["uid"] = "stale-uid"
    return p


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            "not-mirror",
            'pod does not have "kubernetes.io/config.mirror" annotation, '
            'node "mynode" can only create mirror pods',
        ),
        ("other-node", 'node "mynode" can only create pods with spec.nodeName set to itself'),
        ("unbound", 'node "mynode" can only create pods with spec.nodeName set to itself'),
        ("two-owners", 'node "mynode" can only create pods with a single owner reference set to itself'),
        ("no-owner", 'node "mynode" can only create pods with an owner reference set to itself'),
        ("owner-kind", 'node "mynode" can only create pods with an owner reference set to itself'),
        ("owner-version", 'node "mynode" can only create pods with an owner reference set to itself'),
        ("owner-name", 'node "mynode" can only create pods with an owner reference set to itself'),
        (
            "not-controller",
            'node "mynode" can only create pods with a controller owner reference set to itself',
        ),
        (
            "controller-unset",
            'node "mynode" can only create pods with a controller owner reference set to itself',
        ),
        ("block-deletion", 'node "mynode" must not set blockOwnerDeletion on an owner reference'),
        ("uid", "node mynode UID mismatch: expected stale-uid got mynode-uid"),
    ],
)
def test_mirror_pod_create_refusals(change: str, reason: str) -> None:
    assert_refused(create_mirror(_mutated_mirror(change)), MIRROR_PREFIX + reason)


def test_mirror_pod_create_without_node_record_is_not_found() -> None:
    store = Store()
    del store.nodes[NODE]
    verdict = decide(create_mirror(pod("static-web", mirror=True)), store)
    assert verdict == Verdict(False, 'node "mynode" not found (no record in the nodeauthz store)', 404)
    status = render_admission_response("u", verdict)["response"]["status"]
    assert status["code"] == 404 and status["reason"] == "NotFound"


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        ({"serviceAccountName": "default"}, "serviceaccounts"),
        ({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]}, "secrets"),
        ({"imagePullSecrets": [{"name": "regcred"}]}, "secrets"),
        (
            {
                "containers": [
                    {
                        "name": "c",
                        "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    }
                ]
            },
            "secrets",
        ),
        (
            {"volumes": [{"name": "v", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s"}}}]},
            "secrets",
        ),
        ({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}, "configmaps"),
        (
            {"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "cm"}}]}}]},
            "configmaps",
        ),
        (
            {
                "volumes": [
                    {
                        "name": "v",
                        "projected": {"sources": [{"clusterTrustBundle": {"name": "b", "path": "p"}}]},
                    }
                ]
            },
            "clustertrustbundles",
        ),
        (
            {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
            "persistentvolumeclaims",
        ),
    ],
)
def test_mirror_pod_may_not_reference_api_objects(spec: dict[str, Any], what: str) -> None:
    assert_refused(
        create_mirror(pod("static-web", mirror=True, **spec)),
        MIRROR_PREFIX + f'node "mynode" can not create pods that reference {what}',
    )


def test_mirror_pod_with_plain_volumes_is_allowed() -> None:
    volumes = [{"name": "h", "hostPath": {"path": "/etc/kubernetes"}}, {"name": "e", "emptyDir": {}}]
    assert_allowed(create_mirror(pod("static-web", mirror=True, volumes=volumes)))


def test_pod_create_with_wrong_object_type() -> None:
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}}
    assert_refused(
        review("CREATE", "pods", name="p", namespace="ns", obj=binding),
        'pods "p" is forbidden: unexpected type *core.Binding',
    )


# ---- pod update / delete -------------------------------------------------------------------


def test_pod_update_is_refused() -> None:
    p = pod("mypod")
    assert_refused(
        review("UPDATE", "pods", name="mypod", namespace="ns", obj=p, old=p),
        'pods "mypod" is forbidden: unexpected operation "UPDATE", '
        'node "mynode" can only create and delete mirror pods',
    )


def test_pod_delete_uses_the_old_object() -> None:
    assert_allowed(review("DELETE", "pods", name="mypod", namespace="ns", old=pod("mypod")))
    # The apiserver's copy wins over a stale store.
    assert_allowed(review("DELETE", "pods", name="fresh", namespace="ns", old=pod("fresh")))
    assert_refused(
        review("DELETE", "pods", name="otherpod", namespace="ns", old=pod("otherpod", "othernode")),
        'pods "otherpod" is forbidden: node "mynode" can only delete pods with spec.nodeName set to itself',
    )


def test_pod_delete_without_old_object_uses_the_store() -> None:
    assert_allowed(review("DELETE", "pods", name="mypod", namespace="ns"))
    assert_refused(
        review("DELETE", "pods", name="unboundpod", namespace="ns"),
        'pods "unboundpod" is forbidden: node "mynode" can only delete pods with spec.nodeName set to itself',
    )
    assert_refused(
        review("DELETE", "pods", name="ghost", namespace="ns"),
        'pod "ghost" not found (no record in the nodeauthz store)',
        code=404,
    )


# ---- pod status ----------------------------------------------------------------------------


def status_update(old: dict[str, Any], new: dict[str, Any]) -> bytes:
    return review(
        "UPDATE", "pods", sub="status", name=old["metadata"]["name"], namespace="ns", obj=new, old=old
    )


def test_pod_status_update_of_own_pod_is_allowed() -> None:
    old = pod("mypod")
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}]}
    assert_allowed(status_update(old, new))


def test_pod_status_refusals() -> None:
    other = pod("otherpod", "othernode")
    assert_refused(
        status_update(other, other),
        'pods "otherpod" is forbidden: '
        'node "mynode" can only update pod status for pods with spec.nodeName set to itself',
    )
    old = pod("mypod")
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"app": "x"}
    assert_refused(
        status_update(old, relabelled),
        'pods "mypod" is forbidden: node "mynode" cannot update labels through pod status',
    )
    claimed = copy.deepcopy(old)
    claimed["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "mypod-gpu-x"}]
    assert_refused(
        status_update(old, claimed),
        'pods "mypod" is forbidden: node "mynode" cannot update resource claim statues',
    )
    assert_refused(
        review("CREATE", "pods", sub="status", name="mypod", namespace="ns", obj=old),
        'pods "mypod" is forbidden: unexpected operation "CREATE"',
    )
    assert_refused(
        review("UPDATE", "pods", sub="status", name="mypod", namespace="ns", obj=old),
        'pods "mypod" is forbidden: unexpected type <nil>',
    )


def test_pod_status_empty_and_absent_labels_are_equal() -> None:
    old = pod("mypod")
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {}
    assert_allowed(status_update(old, new))


# ---- eviction ------------------------------------------------------------------------------


def eviction(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns"}
    if name:
        meta["name"] = name
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": meta}


def test_eviction_of_own_pod_is_allowed_and_others_refused() -> None:
    assert_allowed(
        review("CREATE", "pods", sub="eviction", name="mypod", namespace="ns", obj=eviction("mypod"))
    )
    assert_refused(
        review("CREATE", "pods", sub="eviction", name="otherpod", namespace="ns", obj=eviction("otherpod")),
        'pods "otherpod" is forbidden: node mynode can only evict pods with spec.nodeName set to itself',
    )


def test_eviction_pod_name_comes_from_url_then_object() -> None:
    # The URL's name wins over the Eviction's.
    assert_allowed(
        review("CREATE", "pods", sub="eviction", name="mypod", namespace="ns", obj=eviction("otherpod"))
    )
    assert_refused(
        review("CREATE", "pods", sub="eviction", namespace="ns", obj=eviction("otherpod")),
        'pods "otherpod" is forbidden: node mynode can only evict pods with spec.nodeName set to itself',
    )
    assert_refused(
        review("CREATE", "pods", sub="eviction", namespace="ns", obj=eviction("")),
        'pods "Unknown" is forbidden: could not determine pod from request data',
    )


def test_eviction_other_cases() -> None:
    assert_refused(
        review("CREATE", "pods", sub="eviction", name="ghost", namespace="ns", obj=eviction("ghost")),
        'pod "ghost" not found (no record in the nodeauthz store)',
        code=404,
    )
    assert_refused(
        review("DELETE", "pods", sub="eviction", name="mypod", namespace="ns"),
        'pods "mypod" is forbidden: unexpected operation DELETE',
    )
    assert_refused(
        review("CREATE", "pods", sub="binding", name="mypod", namespace="ns", obj=eviction("mypod")),
        'pods "mypod" is forbidden: '
        "unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed",
    )


# ---- nodes ---------------------------------------------------------------------------------

ALLOWED_LABELS = {
    "foo": "v",
    "example.com/foo": "v",
    "kubernetes.io/hostname": "v",
    "topology.kubernetes.io/zone": "v",
    "topology.kubernetes.io/region": "v",
    "failure-domain.beta.kubernetes.io/zone": "v",
    "failure-domain.beta.kubernetes.io/region": "v",
    "beta.kubernetes.io/instance-type": "v",
    "node.kubernetes.io/instance-type": "v",
    "kubernetes.io/os": "v",
    "kubernetes.io/arch": "v",
    "beta.kubernetes.io/os": "v",
    "beta.kubernetes.io/arch": "v",
    "kubelet.kubernetes.io/foo": "v",
    "foo.kubelet.kubernetes.io/foo": "v",
    "node.kubernetes.io/foo": "v",
    "foo.node.kubernetes.io/foo": "v",
}
FORBIDDEN_LABELS = {
    "node-restriction.kubernetes.io/foo": "v",
    "foo.node-restriction.kubernetes.io/foo": "v",
    "other.kubernetes.io/foo": "v",
    "other.k8s.io/foo": "v",
}
FORBIDDEN_LIST = (
    "foo.node-restriction.kubernetes.io/foo, node-restriction.kubernetes.io/foo, "
    "other.k8s.io/foo, other.kubernetes.io/foo"
)
CONFIG_A = {"configMap": {"name": "foo", "namespace": "bar", "uid": "fooUID", "kubeletConfigKey": "kubelet"}}
CONFIG_B = {"configMap": {"name": "qux", "namespace": "bar", "uid": "quxUID", "kubeletConfigKey": "kubelet"}}


def node_update(new: dict[str, Any], old: dict[str, Any], sub: str = "") -> bytes:
    return review("UPDATE", "nodes", sub=sub, name=new["metadata"]["name"], obj=new, old=old)


def test_node_create_rules() -> None:
    assert_allowed(review("CREATE", "nodes", name=NODE, obj=node_obj(labels=ALLOWED_LABELS)))
    assert_refused(
        review("CREATE", "nodes", name="othernode", obj=node_obj("othernode")),
        'nodes "othernode" is forbidden: node "mynode" is not allowed to modify node "othernode"',
    )
    assert_refused(
        review("CREATE", "nodes", name=NODE, obj=node_obj(configSource=CONFIG_A)),
        'nodes "mynode" is forbidden: '
        'node "mynode" is not allowed to create pods with a non-nil configSource',
    )
    assert_refused(
        review("CREATE", "nodes", name=NODE, obj=node_obj(labels={**ALLOWED_LABELS, **FORBIDDEN_LABELS})),
        'nodes "mynode" is forbidden: '
        f'node "mynode" is not allowed to set the following labels: {FORBIDDEN_LIST}',
    )


def test_node_update_config_source() -> None:
    assert_allowed(node_update(node_obj(configSource=CONFIG_A), node_obj(configSource=CONFIG_A)))
    # Old kubelets drop the field on status updates: a nil new configSource passes.
    assert_allowed(node_update(node_obj(), node_obj(configSource=CONFIG_A), sub="status"))
    message = (
        'nodes "mynode" is forbidden: '
        'node "mynode" is not allowed to update configSource to a new non-nil configSource'
    )
    assert_refused(node_update(node_obj(configSource=CONFIG_A), node_obj()), message)
    assert_refused(node_update(node_obj(configSource=CONFIG_B), node_obj(configSource=CONFIG_A)), message)


@pytest.mark.parametrize(
    ("new_taints", "old_taints"),
    [
        ([{"key": "k", "value": "A", "effect": "NoSchedule"}], None),
        (None, [{"key": "k", "value": "A", "effect": "NoSchedule"}]),
        (
            [{"key": "k", "value": "A", "effect": "NoSchedule"}],
            [{"key": "k", "value": "B", "effect": "NoSchedule"}],
        ),
    ],
)
def test_node_may_not_modify_taints(new_taints: Any, old_taints: Any) -> None:
    new = node_obj(**({"taints": new_taints} if new_taints else {}))
    old = node_obj(**({"taints": old_taints} if old_taints else {}))
    assert_refused(
        node_update(new, old), 'nodes "mynode" is forbidden: node "mynode" is not allowed to modify taints'
    )


def test_node_empty_taint_list_equals_none() -> None:
    assert_allowed(node_update(node_obj(taints=[]), node_obj()))


def test_node_update_labels() -> None:
    base = node_obj(labels={"kubernetes.io/hostname": "old"})
    assert_allowed(node_update(node_obj(labels=ALLOWED_LABELS), base, sub="status"))
    message = f'nodes "mynode" is forbidden: is not allowed to modify labels: {FORBIDDEN_LIST}'
    assert_refused(node_update(node_obj(labels=FORBIDDEN_LABELS), node_obj()), message)  # added
    assert_refused(node_update(node_obj(), node_obj(labels=FORBIDDEN_LABELS)), message)  # removed
    changed = {k: "new" for k in FORBIDDEN_LABELS}
    assert_refused(node_update(node_obj(labels=changed), node_obj(labels=FORBIDDEN_LABELS)), message)
    # Unchanged forbidden labels (set by an admin) do not block a kubelet's update.
    both = {**FORBIDDEN_LABELS, "kubernetes.io/hostname": "x"}
    assert_allowed(node_update(node_obj(labels=both), node_obj(labels=FORBIDDEN_LABELS)))


def test_other_node_update_and_delete() -> None:
    other = node_obj("othernode")
    message = 'nodes "othernode" is forbidden: node "mynode" is not allowed to modify node "othernode"'
    assert_refused(node_update(other, other, sub="status"), message)
    assert_refused(review("DELETE", "nodes", name="othernode", old=other), message)
    assert_allowed(review("DELETE", "nodes", name=NODE, old=node_obj()))


# ---- persistentvolumeclaims ----------------------------------------------------------------


def pvc(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "ns", "resourceVersion": "1", "labels": {"app": "db"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": "pv-1",
        },
        "status": {"phase": "Bound", **status},
    }


def pvc_status_update(new: dict[str, Any], old: dict[str, Any]) -> bytes:
    return review(
        "UPDATE", "persistentvolumeclaims", sub="status", name="data", namespace="ns", obj=new, old=old
    )


def test_pvc_status_may_change_capacity_conditions_and_allocation() -> None:
    new = pvc(
        capacity={"storage": "2Gi"},
        conditions=[{"type": "FileSystemResizePending", "status": "True"}],
        allocatedResources={"storage": "2Gi"},
        allocatedResourceStatuses={"storage": "NodeResizeInProgress"},
    )
    new["metadata"]["resourceVersion"] = "2"
    new["metadata"]["managedFields"] = [{"manager": "kubelet", "operation": "Update"}]
    assert_allowed(pvc_status_update(new, pvc(capacity={"storage": "1Gi"})))


def test_pvc_status_other_changes_are_refused_with_a_diff() -> None:
    new = pvc()
    new["metadata"]["labels"]["app"] = "web"
    verdict = decide(pvc_status_update(new, pvc()))
    prefix = (
        'persistentvolumeclaims "data" is forbidden: '
        'node "mynode" is not allowed to update fields other than status.quantity and status.conditions: '
    )
    assert not verdict.allowed and verdict.message.startswith(prefix)
    assert verdict.message[len(prefix) :] == '-metadata.labels.app: "db"\n+metadata.labels.app: "web"'


def test_pvc_allocated_resources_need_the_recovery_gate() -> None:
    body = pvc_status_update(pvc(allocatedResources={"storage": "2Gi"}), pvc())
    assert_allowed(body)
    verdict = decide(body, options=AdmissionOptions(recover_volume_expansion_failure=False))
    assert not verdict.allowed and verdict.message.endswith('+status.allocatedResources: {"storage":"2Gi"}')


def test_pvc_other_operations() -> None:
    assert_refused(
        review("UPDATE", "persistentvolumeclaims", name="data", namespace="ns", obj=pvc(), old=pvc()),
        'persistentvolumeclaims "data" is forbidden: may only update PVC status',
    )
    assert_refused(
        review("CREATE", "persistentvolumeclaims", name="data", namespace="ns", obj=pvc()),
        'persistentvolumeclaims "data" is forbidden: may only update PVC status',
    )
    assert_refused(
        review("DELETE", "persistentvolumeclaims", sub="status", name="data", namespace="ns", old=pvc()),
        'persistentvolumeclaims "data" is forbidden: unexpected operation "DELETE"',
    )


# ---- serviceaccounts/token -----------------------------------------------------------------


def token_request(
    pod_name: str | None, uid: str = "", audiences: list[str] | None = None, kind: str = "Pod"
) -> bytes:
    spec: dict[str, Any] = {"expirationSeconds": 3600}
    if audiences is not None:
        spec["audiences"] = audiences
    if pod_name is not None:
        spec["boundObjectRef"] = {"kind": kind, "apiVersion": "v1", "name": pod_name, "uid": uid}
    tr = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {}, "spec": spec}
    return review("CREATE", "serviceaccounts", sub="token", name="mysa", namespace="ns", obj=tr)


SA = 'serviceaccounts "mysa" is forbidden: '


def test_token_for_own_pod_is_allowed() -> None:
    assert_allowed(token_request("mypod", "mypod-uid"))
    assert_allowed(token_request("mypod", "mypod-uid", audiences=[]))
    assert_allowed(token_request("mypod", "mypod-uid", audiences=[""]))


def test_token_refusals() -> None:
    assert_refused(token_request(None), SA + "node requested token not bound to a pod")
    assert_refused(
        token_request("mypod", "mypod-uid", kind="Secret"), SA + "node requested token not bound to a pod"
    )
    assert_refused(token_request("", "x"), SA + "node requested token not bound to a pod")
    assert_refused(token_request("mypod"), SA + "node requested token with a pod binding without a uid")
    assert_refused(
        token_request("nopod", "someuid"),
        'pod "nopod" not found (no record in the nodeauthz store)',
        code=404,
    )
    assert_refused(
        token_request("mypod", "old-uid"),
        SA + "the UID in the bound object reference (old-uid) does not match the UID in record. "
        "The object might have been deleted and then recreated",
    )
    assert_refused(
        token_request("otherpod", "otherpod-uid"),
        SA + "node requested token bound to a pod scheduled on a different node",
    )


def test_token_audience_count() -> None:
    body = token_request("mypod", "mypod-uid", audiences=["foo", "bar"])
    assert_refused(body, SA + "node may only request 0 or 1 audiences")
    assert_allowed(body, options=AdmissionOptions(service_account_node_audience_restriction=False))


def test_other_serviceaccount_requests_pass() -> None:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x", "namespace": "ns"}}
    assert_allowed(review("CREATE", "serviceaccounts", name="x", namespace="ns", obj=sa))


# ---- leases, csinodes ----------------------------------------------------------------------


def lease(name: str, namespace: str = "kube-node-lease") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40},
    }


def test_leases() -> None:
    assert_allowed(review("CREATE", "leases", name=NODE, namespace="kube-node-lease", obj=lease(NODE)))
    assert_allowed(
        review("UPDATE", "leases", name=NODE, namespace="kube-node-lease", obj=lease(NODE), old=lease(NODE))
    )
    assert_allowed(review("DELETE", "leases", name=NODE, namespace="kube-node-lease", old=lease(NODE)))
    assert_refused(
        review("CREATE", "leases", name=NODE, namespace="foo", obj=lease(NODE, "foo")),
        'leases.coordination.k8s.io "mynode" is forbidden: '
        'can only access leases in the "kube-node-lease" system namespace',
    )
    same_name = "can only access node lease with the same name as the requesting node"
    assert_refused(
        review("CREATE", "leases", name="foo", namespace="kube-node-lease", obj=lease("foo")),
        f'leases.coordination.k8s.io "foo" is forbidden: {same_name}',
    )
    assert_refused(
        review("DELETE", "leases", name="foo", namespace="kube-node-lease", old=lease("foo")),
        f'leases.coordination.k8s.io "foo" is forbidden: {same_name}',
    )


def csinode(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {"name": name},
        "spec": {"drivers": [{"name": "com.example.csi/mydriver", "nodeID": name}]},
    }


def test_csinodes() -> None:
    assert_allowed(review("CREATE", "csinodes", name=NODE, obj=csinode(NODE)))
    assert_allowed(review("UPDATE", "csinodes", name=NODE, obj=csinode(NODE), old=csinode(NODE)))
    message = (
        'csinodes.storage.k8s.io "foo" is forbidden: '
        "can only access CSINode with the same name as the requesting node"
    )
    assert_refused(review("CREATE", "csinodes", name="foo", obj=csinode("foo")), message)
    assert_refused(review("UPDATE", "csinodes", name="foo", obj=csinode("foo"), old=csinode("foo")), message)
    assert_refused(review("DELETE", "csinodes", name="foo", old=csinode("foo")), message)


# ---- resourceslices ------------------------------------------------------------------------


def slice_obj(name: str, node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "driver": "gpu.example.com",
        "pool": {"name": "p", "generation": 1, "resourceSliceCount": 1},
    }
    if node is not None:
        spec["nodeName"] = node
    else:
        spec["allNodes"] = True
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_resourceslice_create() -> None:
    assert_allowed(review("CREATE", "resourceslices", name="s1", obj=slice_obj("s1", NODE)))
    for other in ("othernode", None):
        assert_refused(
            review("CREATE", "resourceslices", name="s2", obj=slice_obj("s2", other)),
            'resourceslices.resource.k8s.io "s2" is forbidden: '
            "can only create ResourceSlice with the same NodeName as the requesting node",
        )


def test_resourceslice_deletecollection_checks_each_slice() -> None:
    # A deletecollection reaches the webhook as one DELETE per item, oldObject set.
    verdicts = {
        name: decide(review("DELETE", "resourceslices", name=name, old=slice_obj(name, node)))
        for name, node in (("mine", NODE), ("theirs", "othernode"), ("global", None))
    }
    assert verdicts["mine"].allowed
    for name in ("theirs", "global"):
        assert verdicts[name].message == (
            f'resourceslices.resource.k8s.io "{name}" is forbidden: '
            "can only delete ResourceSlice with the same NodeName as the requesting node"
        )
    assert_refused(
        review("DELETE", "resourceslices", name="s"),
        'resourceslices.resource.k8s.io "s" is forbidden: unexpected type <nil>',
    )


def test_resourceslice_update_is_left_to_the_authorizer() -> None:
    s = slice_obj("theirs", "othernode")
    assert_allowed(review("UPDATE", "resourceslices", name="theirs", obj=s, old=s))


# ---- certificatesigningrequests ------------------------------------------------------------


def pem_csr(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_review(request: bytes, signer: str, *, name: str = "csr-abc", operation: str = "CREATE") -> bytes:
    obj = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name} if name else {"generateName": "csr-"},
        "spec": {
            "request": base64.b64encode(request).decode(),
            "signerName": signer,
            "usages": ["digital signature", "client auth"],
        },
    }
    if operation == "CREATE":
        return review("CREATE", "certificatesigningrequests", name=name, obj=obj)
    return review(operation, "certificatesigningrequests", sub="approval", name=name, obj=obj, old=obj)


CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING = "kubernetes.io/kubelet-serving"
CSR = 'certificatesigningrequests.certificates.k8s.io "csr-abc" is forbidden: '


@pytest.mark.parametrize("signer", [CLIENT, SERVING])
def test_kubelet_csr_must_name_the_node(signer: str) -> None:
    assert_allowed(csr_review(pem_csr("system:node:mynode"), signer))
    assert_refused(
        csr_review(pem_csr("system:node:othernode"), signer),
        CSR + "can only create a node CSR with CN=system:node:mynode",
    )


def test_csr_name_falls_back_to_generate_name() -> None:
    assert_refused(
        csr_review(pem_csr("system:node:othernode"), CLIENT, name=""),
        'certificatesigningrequests.certificates.k8s.io "csr-" is forbidden: '
        "can only create a node CSR with CN=system:node:mynode",
    )


def test_unparseable_csr() -> None:
    assert_refused(
        csr_review(b"this is not a CSR", CLIENT),
        CSR + "unable to parse csr: PEM block type must be CERTIFICATE REQUEST",
    )
    cert_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert_refused(
        csr_review(cert_pem, CLIENT), CSR + "unable to parse csr: PEM block type must be CERTIFICATE REQUEST"
    )
    garbage = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    verdict = decide(csr_review(garbage, CLIENT))
    assert not verdict.allowed and verdict.message.startswith(CSR + "unable to parse csr: x509: ")


def test_csr_rule_scope() -> None:
    other = csr_review(pem_csr("system:node:othernode"), "example.com/custom")
    assert_allowed(other)
    bad = csr_review(pem_csr("system:node:othernode"), CLIENT)
    assert_allowed(bad, options=AdmissionOptions(allow_insecure_kubelet_csrs=True))
    assert_allowed(csr_review(pem_csr("system:node:othernode"), CLIENT, operation="UPDATE"))


# ---- malformed input -----------------------------------------------------------------------


def test_malformed_object_is_refused_not_crashed() -> None:
    p = pod("static-web", mirror=True)
    p["spec"]["volumes"] = "secret"
    assert_refused(create_mirror(p), MIRROR_PREFIX + "malformed object: spec.volumes: expected list")


def test_names_are_quoted_as_go_does() -> None:
    odd = 'we"ird\tnode\u00a0é'
    assert_refused(
        review("DELETE", "nodes", name=odd, old=node_obj(odd)),
        'nodes "we\\"ird\\tnode\\u00a0é" is forbidden: '
        'node "mynode" is not allowed to modify node "we\\"ird\\tnode\\u00a0é"',
    )
