"""Mirror pods may reference no API object: upstream's ``HasAPIObjectReference``, message and order.

Upstream: ``plugin/pkg/admission/noderestriction/admission.go`` ``admitPodCreate`` (1.34+) calls
``pkg/api/pod/util.go`` ``HasAPIObjectReference``; the resourceclaims check first shipped in the
1.33.2 / 1.32.6 security patches. The first group of cases are ``Test_nodePlugin_Admit``'s
"forbid create of pod referencing ..." cases; the rest walk each branch of the volume switch.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admission.test_restriction import MIRROR_PREFIX, assert_allowed, assert_refused, create_mirror, pod


def refused_for(spec: dict[str, Any], reason: str) -> None:
    assert_refused(create_mirror(pod("static-web", mirror=True, **spec)), MIRROR_PREFIX + reason)


def references(what: str) -> str:
    return f'node "mynode" can not create pods that reference {what}'


def vol(name: str = "v", **source: Any) -> dict[str, Any]:
    return {"name": name, **source}


def projected(*sources: dict[str, Any], name: str = "v") -> dict[str, Any]:
    return vol(name, projected={"sources": list(sources), "defaultMode": 420})


# ---- upstream's admission_test.go cases ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        ({"serviceAccountName": "foo"}, "serviceaccounts"),
        ({"volumes": [vol(secret={"secretName": "foo"})]}, "secrets"),
        ({"volumes": [vol(configMap={"name": "foo"})]}, "configmaps"),
        (
            {"volumes": [projected({"clusterTrustBundle": {"name": "foo", "path": "p"}})]},
            "clustertrustbundles",
        ),
        ({"volumes": [vol(persistentVolumeClaim={"claimName": "foo"})]}, "persistentvolumeclaims"),
        ({"resourceClaims": [{"name": "myclaim", "resourceClaimName": "myexternalclaim"}]}, "resourceclaims"),
    ],
    ids=["serviceaccount", "secret", "configmap", "clustertrustbundle", "pvc", "resourceclaim"],
)
def test_upstream_reference_cases(spec: dict[str, Any], what: str) -> None:
    refused_for(spec, references(what))


# ---- every branch of HasAPIObjectReference -------------------------------------------------------


def test_resource_claim_from_a_template_is_refused_too() -> None:
    claims = [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}]
    refused_for({"resourceClaims": claims}, references("resourceclaims"))


@pytest.mark.parametrize(
    ("volume", "what"),
    [
        (vol(csi={"driver": "inline.csi.example.com"}), "csidrivers (via CSI volumes)"),
        (vol(glusterfs={"endpoints": "ep", "path": "/vol"}), "endpoints (via glusterFS volumes)"),
        (
            vol(ephemeral={"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}),
            "persistentvolumeclaims (via ephemeral volumes)",
        ),
        (projected({"serviceAccountToken": {"path": "token"}}), "serviceaccounts (via projected volumes)"),
        (
            projected({"serviceAccountToken": {"audience": "vault", "path": "token"}}),
            "serviceaccounts (via projected volumes)",
        ),
        (
            projected({"podCertificate": {"signerName": "example.com/s", "keyType": "ED25519"}}),
            "podcertificates",
        ),
        (
            projected(
                {"downwardAPI": {"items": []}}, {"clusterTrustBundle": {"signerName": "x/y", "path": "p"}}
            ),
            "clustertrustbundles",
        ),
    ],
    ids=[
        "csi",
        "glusterfs",
        "ephemeral",
        "sa-token",
        "sa-token-audience",
        "podcertificate",
        "after-downwardapi",
    ],
)
def test_volume_references(volume: dict[str, Any], what: str) -> None:
    refused_for({"volumes": [volume]}, references(what))


def test_the_first_referencing_volume_decides() -> None:
    volumes = [vol("h", hostPath={"path": "/etc"}), vol("e", ephemeral={}), vol("c", csi={"driver": "d"})]
    refused_for({"volumes": volumes}, references("persistentvolumeclaims (via ephemeral volumes)"))


def test_checks_before_volumes_win_over_volume_order() -> None:
    # The service account comes first, then secrets anywhere in the spec, then configmaps, then claims.
    spec = {
        "serviceAccountName": "sa",
        "volumes": [vol(csi={"driver": "d"})],
        "imagePullSecrets": [{"name": "r"}],
    }
    refused_for(spec, references("serviceaccounts"))
    spec = {"volumes": [vol("a", configMap={"name": "c"}), vol("b", secret={"secretName": "s"})]}
    refused_for(spec, references("secrets"))
    spec = {
        "resourceClaims": [{"name": "x", "resourceClaimName": "y"}],
        "volumes": [vol(configMap={"name": "c"})],
    }
    refused_for(spec, references("configmaps"))
    spec = {
        "resourceClaims": [{"name": "x", "resourceClaimName": "y"}],
        "volumes": [vol(csi={"driver": "d"})],
    }
    refused_for(spec, references("resourceclaims"))


def test_a_volume_source_that_holds_a_secret_reference_is_reported_as_secrets() -> None:
    # VisitPodSecretNames runs before the volume switch: azureFile and CSI publish secrets say "secrets".
    refused_for({"volumes": [vol(azureFile={"secretName": "s", "shareName": "x"})]}, references("secrets"))
    csi = vol(csi={"driver": "d", "nodePublishSecretRef": {"name": "s"}})
    refused_for({"volumes": [csi]}, references("secrets"))


def test_local_volumes_are_allowed() -> None:
    volumes = [
        vol("h", hostPath={"path": "/etc/kubernetes", "type": "DirectoryOrCreate"}),
        vol("e", emptyDir={"medium": "Memory"}),
        vol("n", nfs={"server": "nfs", "path": "/x"}),
        vol("i", image={"reference": "registry.example/data:1"}),
        vol("d", downwardAPI={"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}),
        projected({"downwardAPI": {"items": []}}, name="p"),
        vol("empty-projection", projected={"sources": []}),
    ]
    assert_allowed(create_mirror(pod("static-web", mirror=True, volumes=volumes)))


def test_empty_resource_claim_list_is_no_reference() -> None:
    assert_allowed(create_mirror(pod("static-web", mirror=True, resourceClaims=[])))


# ---- unknown types are errors, with upstream's text -----------------------------------------------


@pytest.mark.parametrize(
    ("volume", "error"),
    [
        (vol("future", futureVolume={"x": 1}), 'unknown volume type for volume  "future"'),
        (vol("bare"), 'unknown volume type for volume  "bare"'),
        (projected({"futureProjection": {}}, name="p"), 'unknown source for projected volume "p"'),
        (projected(None, name="p"), 'unknown source for projected volume "p"'),  # type: ignore[arg-type]
        (None, 'unknown volume type for volume  ""'),
    ],
    ids=["unknown-volume", "no-source", "unknown-projection", "null-projection", "null-volume"],
)
def test_unknown_volume_types_are_refused(volume: Any, error: str) -> None:
    refused_for({"volumes": [volume]}, f"error checking mirror pod for API references: {error}")


def test_an_unknown_volume_after_a_referencing_one_is_not_reached() -> None:
    volumes = [vol("c", csi={"driver": "d"}), vol("future", futureVolume={})]
    refused_for({"volumes": volumes}, references("csidrivers (via CSI volumes)"))


def test_wrong_json_types_are_malformed() -> None:
    refused_for({"resourceClaims": {"name": "x"}}, "malformed object: spec.resourceClaims: expected list")
    refused_for({"volumes": [vol(csi="driver")]}, "malformed object: spec.volumes[0].csi: expected object")
