"""Object -> edges derivation (app.graph.derivation), checked against upstream's graph population rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.graph.derivation import DerivedObject, Edge, InvalidObject, derive, owner_kind, pod_is_mirror
from app.k8s.kinds import (
    CONFIGMAP,
    CSIDRIVER,
    NODE,
    POD,
    PODCERTIFICATEREQUEST,
    PV,
    PVC,
    RESOURCECLAIM,
    RESOURCESLICE,
    SECRET,
    SERVICEACCOUNT,
    VOLUMEATTACHMENT,
    VertexKey,
)

NS = "team-a"
NODE_NAME = "node-1"
POD_NAME = "web"
POD_KEY = VertexKey(POD, NS, POD_NAME)
NODE_KEY = VertexKey(NODE, "", NODE_NAME)
POD_TO_NODE = Edge(POD_KEY, NODE_KEY, NODE_NAME)


# --- builders ---------------------------------------------------------------------------------------


def make_pod(
    spec: dict[str, Any] | None = None,
    *,
    node: str | None = NODE_NAME,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": POD_NAME, "namespace": NS, "uid": "pod-uid", "resourceVersion": "11"}
    if annotations is not None:
        meta["annotations"] = annotations
    full_spec = dict(spec or {})
    if node is not None:
        full_spec["nodeName"] = node
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": full_spec}
    if status is not None:
        obj["status"] = status
    return obj


def to_pod(kind: str, name: str) -> Edge:
    """The destination edge ``kind(NS, name) -> pod`` of the standard test pod."""
    return Edge(VertexKey(kind, NS, name), POD_KEY, NODE_NAME)


def pod_edges(spec: dict[str, Any], **kwargs: Any) -> set[Edge]:
    return set(derive(make_pod(spec, **kwargs)).edges)


def vol(name: str, **source: Any) -> dict[str, Any]:
    return {"name": name, **source}


def make_pv(spec: dict[str, Any], name: str = "pv-1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


PV_KEY = VertexKey(PV, "", "pv-1")
CLAIM = {"namespace": "claim-ns", "name": "data"}
PV_TO_PVC = Edge(PV_KEY, VertexKey(PVC, "claim-ns", "data"), None)


def to_pv(namespace: str, name: str) -> Edge:
    return Edge(VertexKey(SECRET, namespace, name), PV_KEY, None)


def pv_edges(source: dict[str, Any]) -> set[Edge]:
    return set(derive(make_pv({"claimRef": CLAIM, **source})).edges)


# --- owner_kind ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Pod", POD),
        ("PersistentVolume", PV),
        ("VolumeAttachment", VOLUMEATTACHMENT),
        ("ResourceSlice", RESOURCESLICE),
        ("PodCertificateRequest", PODCERTIFICATEREQUEST),
        ("Node", NODE),
        ("Secret", None),
        ("PersistentVolumeClaim", PVC),
        ("ServiceAccount", SERVICEACCOUNT),
        ("CSIDriver", CSIDRIVER),
        ("ConfigMap", None),
        ("pod", None),
        (7, None),
    ],
)
def test_owner_kind(kind: Any, expected: str | None) -> None:
    assert owner_kind({"kind": kind}) == expected


def test_owner_kind_without_kind_field() -> None:
    assert owner_kind({"metadata": {"name": "x"}}) is None


# --- pods: the basic shape ----------------------------------------------------------------------------


def test_pod_row_carries_identity_and_node() -> None:
    d = derive(make_pod())
    assert (d.kind, d.namespace, d.name, d.uid, d.resource_version) == (POD, NS, POD_NAME, "pod-uid", "11")
    assert d.node_name == NODE_NAME
    assert d.key == POD_KEY
    assert d.edges == (POD_TO_NODE,)


def test_service_account_edge() -> None:
    assert pod_edges({"serviceAccountName": "builder"}) == {POD_TO_NODE, to_pod(SERVICEACCOUNT, "builder")}
    assert pod_edges({"serviceAccountName": ""}) == {POD_TO_NODE}


def test_image_pull_secrets_skip_empty_names() -> None:
    spec = {"imagePullSecrets": [{"name": "regcred"}, {"name": ""}, {}]}
    assert pod_edges(spec) == {POD_TO_NODE, to_pod(SECRET, "regcred")}


def test_container_env_secret_and_configmap_refs_in_all_container_lists() -> None:
    def container(suffix: str) -> dict[str, Any]:
        return {
            "name": f"c-{suffix}",
            "envFrom": [{"secretRef": {"name": f"sf-{suffix}"}}, {"configMapRef": {"name": f"cf-{suffix}"}}],
            "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": f"sk-{suffix}", "key": "k"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": f"ck-{suffix}", "key": "k"}}},
                {"name": "C", "value": "plain"},
                {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        }

    spec = {"initContainers": [container("init")], "containers": [container("main")]}
    expected = {POD_TO_NODE}
    for suffix in ("init", "main"):
        expected |= {to_pod(SECRET, f"sf-{suffix}"), to_pod(SECRET, f"sk-{suffix}")}
        expected |= {to_pod(CONFIGMAP, f"cf-{suffix}"), to_pod(CONFIGMAP, f"ck-{suffix}")}
    assert pod_edges(spec) == expected


def test_ephemeral_containers_count() -> None:
    spec = {
        "containers": [{"name": "app"}],
        "ephemeralContainers": [
            {
                "name": "debugger",
                "envFrom": [{"secretRef": {"name": "debug-secret"}}],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "debug-cm"}}}],
            }
        ],
    }
    assert pod_edges(spec) == {POD_TO_NODE, to_pod(SECRET, "debug-secret"), to_pod(CONFIGMAP, "debug-cm")}


# --- pods: volumes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        {"azureFile": {"secretName": "s", "shareName": "share"}},
        {"cephfs": {"monitors": ["m"], "secretRef": {"name": "s"}}},
        {"cinder": {"volumeID": "v", "secretRef": {"name": "s"}}},
        {"flexVolume": {"driver": "d", "secretRef": {"name": "s"}}},
        {"projected": {"sources": [{"secret": {"name": "s"}}]}},
        {"rbd": {"image": "i", "secretRef": {"name": "s"}}},
        {"secret": {"secretName": "s"}},
        {"scaleIO": {"gateway": "g", "secretRef": {"name": "s"}}},
        {"iscsi": {"targetPortal": "t", "secretRef": {"name": "s"}}},
        {"storageos": {"volumeName": "v", "secretRef": {"name": "s"}}},
        {"csi": {"driver": "d", "nodePublishSecretRef": {"name": "s"}}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_secret_volume_sources(source: dict[str, Any]) -> None:
    assert pod_edges({"volumes": [vol("v", **source)]}) == {POD_TO_NODE, to_pod(SECRET, "s")}


@pytest.mark.parametrize(
    "source",
    [
        {"azureFile": {"secretName": "", "shareName": "share"}},
        {"cephfs": {"monitors": ["m"]}},
        {"secret": {}},
        {"csi": {"driver": "d"}},
        {"hostPath": {"path": "/var/data"}},
        {"emptyDir": {}},
        {"image": {"reference": "registry/image:v1"}},
        {"downwardAPI": {"items": []}},
        {
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": []}},
                    {"clusterTrustBundle": {"name": "bundle", "path": "ca.pem"}},
                    {"podCertificate": {"signerName": "x/y", "keyType": "ED25519"}},
                ]
            }
        },
    ],
    ids=lambda s: next(iter(s)),
)
def test_volume_sources_granting_nothing(source: dict[str, Any]) -> None:
    assert pod_edges({"volumes": [vol("v", **source)]}) == {POD_TO_NODE}


def test_configmap_volumes() -> None:
    spec = {
        "volumes": [
            vol("cfg", configMap={"name": "app-config"}),
            vol(
                "proj",
                projected={"sources": [{"configMap": {"name": "root-ca"}}, {"secret": {"name": "tls"}}]},
            ),
        ]
    }
    assert pod_edges(spec) == {
        POD_TO_NODE,
        to_pod(CONFIGMAP, "app-config"),
        to_pod(CONFIGMAP, "root-ca"),
        to_pod(SECRET, "tls"),
    }


def test_only_first_volume_source_is_visited_like_upstream() -> None:
    # Upstream walks each volume with a switch: only the first source present counts.
    # Secrets and config maps are separate switches, so each sees its own first match.
    spec = {
        "volumes": [
            vol("a", azureFile={"secretName": "first"}, secret={"secretName": "ignored-secret"}),
            vol("b", projected={"sources": []}, configMap={"name": "ignored-cm"}),
            vol("c", secret={"secretName": "both-secret"}, configMap={"name": "both-cm"}),
        ]
    }
    assert pod_edges(spec) == {
        POD_TO_NODE,
        to_pod(SECRET, "first"),
        to_pod(SECRET, "both-secret"),
        to_pod(CONFIGMAP, "both-cm"),
    }


def test_null_volume_sources_count_as_absent() -> None:
    spec = {"volumes": [vol("a", azureFile=None, secret={"secretName": "s"}), None]}
    assert pod_edges(spec) == {POD_TO_NODE, to_pod(SECRET, "s")}


def test_pvc_and_ephemeral_volumes() -> None:
    spec = {
        "volumes": [
            vol("data", persistentVolumeClaim={"claimName": "data-claim"}),
            vol("scratch", ephemeral={"volumeClaimTemplate": {"spec": {}}}),
            vol("both", persistentVolumeClaim={"claimName": "explicit"}, ephemeral={}),
            vol("empty", persistentVolumeClaim={"claimName": ""}),
        ]
    }
    assert pod_edges(spec) == {
        POD_TO_NODE,
        to_pod(PVC, "data-claim"),
        to_pod(PVC, f"{POD_NAME}-scratch"),
        to_pod(PVC, "explicit"),
    }


# --- pods: resource claims ----------------------------------------------------------------------------


def test_direct_resource_claims() -> None:
    spec = {"resourceClaims": [{"name": "gpu", "resourceClaimName": "shared-gpu"}]}
    assert pod_edges(spec) == {POD_TO_NODE, to_pod(RESOURCECLAIM, "shared-gpu")}


def test_template_claims_need_status() -> None:
    spec = {
        "resourceClaims": [
            {"name": "gpu", "resourceClaimTemplateName": "gpu-template"},
            {"name": "nic", "resourceClaimTemplateName": "nic-template"},
            {"name": "fpga", "resourceClaimTemplateName": "fpga-template"},
        ]
    }
    status = {
        "resourceClaimStatuses": [
            {"name": "gpu", "resourceClaimName": "web-gpu-x7k2p"},
            {"name": "nic", "resourceClaimName": None},  # intentionally no claim
        ]
    }
    assert pod_edges(spec) == {POD_TO_NODE}
    assert pod_edges(spec, status=status) == {POD_TO_NODE, to_pod(RESOURCECLAIM, "web-gpu-x7k2p")}


def test_template_claim_name_never_guessed_from_template() -> None:
    spec = {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}]}
    status = {"resourceClaimStatuses": [{"name": "other", "resourceClaimName": "other-claim"}]}
    assert pod_edges(spec, status=status) == {POD_TO_NODE}


def test_claim_name_takes_precedence_over_template() -> None:
    spec = {
        "resourceClaims": [{"name": "gpu", "resourceClaimName": "direct", "resourceClaimTemplateName": "t"}]
    }
    status = {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "generated"}]}
    assert pod_edges(spec, status=status) == {POD_TO_NODE, to_pod(RESOURCECLAIM, "direct")}


def test_extended_resource_claim_status() -> None:
    status = {"extendedResourceClaimStatus": {"resourceClaimName": "web-extended-abc", "requestMappings": []}}
    assert pod_edges({}, status=status) == {POD_TO_NODE, to_pod(RESOURCECLAIM, "web-extended-abc")}
    assert pod_edges({}, status={"extendedResourceClaimStatus": {"resourceClaimName": ""}}) == {POD_TO_NODE}


# --- pods: special states -----------------------------------------------------------------------------

RICH_SPEC: dict[str, Any] = {
    "serviceAccountName": "default",
    "imagePullSecrets": [{"name": "regcred"}],
    "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "env"}}]}],
    "volumes": [
        vol("d", persistentVolumeClaim={"claimName": "data"}),
        vol("s", secret={"secretName": "tls"}),
    ],
    "resourceClaims": [{"name": "gpu", "resourceClaimName": "gpu"}],
}
RICH_EDGES = {
    POD_TO_NODE,
    to_pod(SERVICEACCOUNT, "default"),
    to_pod(SECRET, "regcred"),
    to_pod(SECRET, "tls"),
    to_pod(CONFIGMAP, "env"),
    to_pod(PVC, "data"),
    to_pod(RESOURCECLAIM, "gpu"),
}


def test_mirror_pod_grants_only_pod_to_node() -> None:
    mirror = make_pod(RICH_SPEC, annotations={"kubernetes.io/config.mirror": "hash"})
    assert derive(mirror).edges == (POD_TO_NODE,)
    assert pod_is_mirror(mirror)
    # The annotation counts whatever its value.
    assert derive(make_pod(RICH_SPEC, annotations={"kubernetes.io/config.mirror": ""})).edges == (
        POD_TO_NODE,
    )
    assert pod_edges(RICH_SPEC, annotations={"other": "x"}) == RICH_EDGES


def test_pod_is_mirror() -> None:
    assert not pod_is_mirror(make_pod())
    assert not pod_is_mirror({"metadata": {"name": "x"}})
    assert pod_is_mirror({"metadata": {"annotations": {"kubernetes.io/config.mirror": "h"}}})
    with pytest.raises(InvalidObject, match=r"^metadata\.annotations: expected object$"):
        pod_is_mirror({"metadata": {"annotations": ["kubernetes.io/config.mirror"]}})


@pytest.mark.parametrize("node", [None, ""])
def test_unbound_pod_keeps_row_without_edges(node: str | None) -> None:
    d = derive(make_pod(RICH_SPEC, node=node))
    assert (d.key, d.uid, d.node_name, d.edges) == (POD_KEY, "pod-uid", "", ())


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_pod_keeps_its_edges(phase: str) -> None:
    assert pod_edges(RICH_SPEC, status={"phase": phase}) == RICH_EDGES


def test_refs_use_the_pod_namespace() -> None:
    obj = make_pod(RICH_SPEC)
    obj["metadata"]["namespace"] = "other"
    d = derive(obj)
    assert {e.source.namespace for e in d.edges if e.target.kind == POD} == {"other"}


def test_edges_sorted_and_deduplicated() -> None:
    spec = {
        "imagePullSecrets": [{"name": "s"}, {"name": "s"}],
        "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}],
        "volumes": [vol("a", secret={"secretName": "s"}), vol("b", secret={"secretName": "s"})],
    }
    d = derive(make_pod(spec))
    assert d.edges == tuple(sorted({POD_TO_NODE, to_pod(SECRET, "s")}))


# --- fingerprint --------------------------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_input() -> None:
    a = derive(make_pod(RICH_SPEC))
    b = copy.deepcopy(make_pod(RICH_SPEC))
    b["spec"]["volumes"].reverse()  # order of references does not matter
    b["metadata"]["resourceVersion"] = "12"  # a no-op update
    assert derive(b).fingerprint == a.fingerprint
    assert derive(make_pod(RICH_SPEC)) == a


def test_fingerprint_changes_with_edges_uid_or_node() -> None:
    base = derive(make_pod(RICH_SPEC)).fingerprint
    more = copy.deepcopy(RICH_SPEC)
    more["imagePullSecrets"].append({"name": "extra"})
    assert derive(make_pod(more)).fingerprint != base
    moved = make_pod(RICH_SPEC, node="node-2")
    assert derive(moved).fingerprint != base
    recreated = make_pod(RICH_SPEC)
    recreated["metadata"]["uid"] = "new-uid"
    assert derive(recreated).fingerprint != base


# --- persistent volumes -------------------------------------------------------------------------------


def test_pv_claim_ref_edge() -> None:
    d = derive(make_pv({"claimRef": CLAIM, "hostPath": {"path": "/x"}}))
    assert (d.kind, d.namespace, d.node_name, d.edges) == (PV, "", "", (PV_TO_PVC,))


def test_unclaimed_pv_has_no_edges() -> None:
    # Upstream adds nothing, not even secret -> pv, until the PV is claimed.
    assert (
        derive(
            make_pv({"csi": {"driver": "d", "nodePublishSecretRef": {"name": "s", "namespace": "x"}}})
        ).edges
        == ()
    )


def test_pv_azure_file_namespace() -> None:
    assert pv_edges({"azureFile": {"secretName": "az", "secretNamespace": "az-ns"}}) == {
        PV_TO_PVC,
        to_pv("az-ns", "az"),
    }
    assert pv_edges({"azureFile": {"secretName": "az"}}) == {PV_TO_PVC, to_pv("claim-ns", "az")}
    assert pv_edges({"azureFile": {"secretName": ""}}) == {PV_TO_PVC}


@pytest.mark.parametrize("source", ["cephfs", "flexVolume", "rbd", "scaleIO", "iscsi"])
def test_pv_secret_ref_falls_back_to_claim_namespace(source: str) -> None:
    assert pv_edges({source: {"secretRef": {"name": "s", "namespace": "own"}}}) == {
        PV_TO_PVC,
        to_pv("own", "s"),
    }
    assert pv_edges({source: {"secretRef": {"name": "s"}}}) == {PV_TO_PVC, to_pv("claim-ns", "s")}


@pytest.mark.parametrize("source", ["cinder", "storageos"])
def test_pv_secret_ref_keeps_own_namespace(source: str) -> None:
    assert pv_edges({source: {"secretRef": {"name": "s", "namespace": "own"}}}) == {
        PV_TO_PVC,
        to_pv("own", "s"),
    }
    assert pv_edges({source: {"secretRef": {"name": "s"}}}) == {PV_TO_PVC, to_pv("", "s")}


def test_pv_csi_node_secrets_only() -> None:
    csi = {
        "driver": "d",
        "controllerPublishSecretRef": {"name": "ctrl-publish", "namespace": "c"},
        "controllerExpandSecretRef": {"name": "ctrl-expand", "namespace": "c"},
        "nodePublishSecretRef": {"name": "publish", "namespace": "n1"},
        "nodeStageSecretRef": {"name": "stage", "namespace": "n2"},
        "nodeExpandSecretRef": {"name": "expand", "namespace": "n3"},
    }
    assert pv_edges({"csi": csi}) == {
        PV_TO_PVC,
        to_pv("n1", "publish"),
        to_pv("n2", "stage"),
        to_pv("n3", "expand"),
    }


def test_pv_only_first_source_counts() -> None:
    source = {
        "cephfs": {"secretRef": {"name": "ceph"}},
        "csi": {"nodePublishSecretRef": {"name": "csi", "namespace": "x"}},
    }
    assert pv_edges(source) == {PV_TO_PVC, to_pv("claim-ns", "ceph")}


# --- node-bound objects and nodes ---------------------------------------------------------------------


def test_volume_attachment() -> None:
    va: dict[str, Any] = {"kind": "VolumeAttachment", "metadata": {"name": "csi-123"}}
    va["spec"] = {"nodeName": NODE_NAME}
    d = derive(va)
    assert (d.key, d.node_name) == (VertexKey(VOLUMEATTACHMENT, "", "csi-123"), NODE_NAME)
    assert d.edges == (Edge(VertexKey(VOLUMEATTACHMENT, "", "csi-123"), NODE_KEY, NODE_NAME),)
    va["spec"]["nodeName"] = ""
    assert (derive(va).node_name, derive(va).edges) == ("", ())


def test_resource_slice_versions() -> None:
    slice_key = VertexKey(RESOURCESLICE, "", "gpu-slice")
    beta = {
        "apiVersion": "resource.k8s.io/v1beta1",
        "kind": "ResourceSlice",
        "metadata": {"name": "gpu-slice"},
    }
    beta["spec"] = {"driver": "gpu.example.com", "nodeName": NODE_NAME, "pool": {"name": "p"}}
    assert derive(beta).edges == (Edge(slice_key, NODE_KEY, NODE_NAME),)
    v1 = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "gpu-slice"}}
    v1["spec"] = {"driver": "gpu.example.com", "allNodes": True, "pool": {"name": "p"}}
    assert (derive(v1).node_name, derive(v1).edges) == ("", ())
    v1["spec"] = {"nodeName": None, "nodeSelector": {"nodeSelectorTerms": []}}
    assert derive(v1).edges == ()


def test_pod_certificate_request() -> None:
    pcr = {
        "kind": "PodCertificateRequest",
        "metadata": {"name": "req-1", "namespace": NS, "uid": "u"},
        "spec": {"nodeName": NODE_NAME, "podName": POD_NAME, "signerName": "x/y"},
    }
    d = derive(pcr)
    pcr_key = VertexKey(PODCERTIFICATEREQUEST, NS, "req-1")
    assert (d.key, d.node_name, d.edges) == (pcr_key, NODE_NAME, (Edge(pcr_key, NODE_KEY, NODE_NAME),))


def test_node_has_no_edges() -> None:
    d = derive({"kind": "Node", "metadata": {"name": NODE_NAME, "uid": "node-uid", "resourceVersion": "5"}})
    assert d == DerivedObject(NODE, "", NODE_NAME, "node-uid", "5", NODE_NAME, ())


def test_missing_uid_and_resource_version_default_to_empty() -> None:
    d = derive({"kind": "Node", "metadata": {"name": "n"}})
    assert (d.uid, d.resource_version) == ("", "")


# --- kind handling ------------------------------------------------------------------------------------


def test_explicit_kind_for_list_items_without_kind() -> None:
    item = make_pod()
    del item["kind"]
    assert derive(item, POD).edges == (POD_TO_NODE,)
    with pytest.raises(InvalidObject, match="not a kind the graph uses"):
        derive(item)


def test_kinds_the_graph_does_not_use() -> None:
    with pytest.raises(InvalidObject, match="not a kind the graph uses"):
        derive({"kind": "Secret", "metadata": {"name": "s", "namespace": NS}})
    with pytest.raises(InvalidObject, match="not a kind the graph uses"):
        derive(make_pod(), SECRET)


def test_kind_argument_must_match_object() -> None:
    with pytest.raises(InvalidObject, match="^kind: object is a Pod, expected pv$"):
        derive(make_pod(), PV)


# --- malformed input ----------------------------------------------------------------------------------


def with_spec(**spec: Any) -> dict[str, Any]:
    return make_pod(spec)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"kind": "Pod"}, "metadata: required"),
        ({"kind": "Pod", "metadata": "x"}, "metadata: expected object"),
        ({"kind": "Node", "metadata": {}}, "metadata.name: expected a non-empty string"),
        ({"kind": "Node", "metadata": {"name": ""}}, "metadata.name: expected a non-empty string"),
        ({"kind": "Node", "metadata": {"name": 5}}, "metadata.name: expected a non-empty string"),
        ({"kind": "Node", "metadata": {"name": "n" * 254}}, "metadata.name: longer than 253 characters"),
        ({"kind": "Node", "metadata": {"name": "n", "uid": 1}}, "metadata.uid: expected string"),
        ({"kind": "Pod", "metadata": {"name": "p"}}, "metadata.namespace: required for pod"),
        (
            {"kind": "PodCertificateRequest", "metadata": {"name": "r", "namespace": ""}},
            "metadata.namespace: required for podcertificaterequest",
        ),
        ({"kind": "Pod", "metadata": {"name": "p", "namespace": "n"}, "spec": []}, "spec: expected object"),
        (make_pod({"nodeName": 3}, node=None), "spec.nodeName: expected string"),
        (with_spec(volumes={"a": {}}), "spec.volumes: expected list"),
        (with_spec(volumes=[vol("a"), vol("b"), "c"]), "spec.volumes[2]: expected object"),
        (
            with_spec(volumes=[vol("a"), vol("b"), vol("c", secret={"secretName": 5})]),
            "spec.volumes[2].secret.secretName: expected string",
        ),
        (
            with_spec(volumes=[vol("p", projected={"sources": [{"configMap": ["x"]}]})]),
            "spec.volumes[0].projected.sources[0].configMap: expected object",
        ),
        (
            with_spec(
                containers=[
                    {"name": "c", "env": [{"name": "A"}, {"valueFrom": {"secretKeyRef": {"name": 1}}}]}
                ]
            ),
            "spec.containers[0].env[1].valueFrom.secretKeyRef.name: expected string",
        ),
        (with_spec(ephemeralContainers="debug"), "spec.ephemeralContainers: expected list"),
        (with_spec(serviceAccountName=["sa"]), "spec.serviceAccountName: expected string"),
        (with_spec(imagePullSecrets=["regcred"]), "spec.imagePullSecrets[0]: expected object"),
        (
            make_pod(
                {"resourceClaims": [{"name": "g", "resourceClaimTemplateName": "t"}]},
                status={"resourceClaimStatuses": ["x"]},
            ),
            "status.resourceClaimStatuses[0]: expected object",
        ),
        (make_pod(annotations=["kubernetes.io/config.mirror"]), "metadata.annotations: expected object"),  # type: ignore[arg-type]
        (make_pv({"claimRef": "team/data"}), "spec.claimRef: expected object"),
        (
            make_pv({"claimRef": CLAIM, "csi": {"nodeStageSecretRef": {"name": "s", "namespace": 1}}}),
            "spec.csi.nodeStageSecretRef.namespace: expected string",
        ),
        (
            {"kind": "VolumeAttachment", "metadata": {"name": "va"}, "spec": {"nodeName": {"name": "n"}}},
            "spec.nodeName: expected string",
        ),
    ],
)
def test_malformed_input_names_the_field(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidObject) as info:
        derive(obj)
    assert str(info.value) == message


def test_non_object_input() -> None:
    with pytest.raises(InvalidObject, match="expected a JSON object"):
        derive(["not", "an", "object"], POD)  # type: ignore[arg-type]
