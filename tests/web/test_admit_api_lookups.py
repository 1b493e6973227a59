"""``/admit`` end to end for the checks that read the new stored objects and ask the API server.

Reviews are shaped as the kube-apiserver sends them; the store is the real database (both kinds),
filled as the sync worker fills it; SubjectAccessReviews go over HTTP to the fake API server, which
answers from the table the test sets (``FakeApiServer.access``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.graph.store import GraphStore
from app.web.app import create_app
from app.web.settings import Settings
from tests import builders
from tests.admission.test_restriction import review, token_request
from tests.fake_apiserver import FakeApiServer
from tests.web.test_admit import DEFAULT_TOKEN_VOLUME, post
from tests.writers import apply_raw

NODE = "mynode"
DRIVER = "secrets-store.csi.k8s.io"
SA = 'serviceaccounts "mysa" is forbidden: '
PCR = 'podcertificaterequests.certificates.k8s.io "web-0-x7k2p" is forbidden: '


def objects() -> list[dict[str, Any]]:
    token = {"name": "vault", "projected": {"sources": [{"serviceAccountToken": {"audience": "vault"}}]}}
    certs = {"name": "certs", "projected": {"sources": [{"podCertificate": {"signerName": "example.com/a"}}]}}
    return [
        builders.node(NODE, uid=f"{NODE}-uid"),
        builders.pod(
            "mypod",
            "ns",
            NODE,
            uid="mypod-uid",
            service_account="web",
            pvcs=("data",),
            volumes=[DEFAULT_TOKEN_VOLUME, token, certs],
        ),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "web", "namespace": "ns", "uid": "sa-uid"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "ns", "uid": "pvc-uid"},
            "spec": {"volumeName": "pv-data"},
        },
        builders.pv("pv-data", ("ns", "data")) | {"spec": {"csi": {"driver": DRIVER, "volumeHandle": "h"}}},
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": DRIVER, "uid": "driver-uid"},
            "spec": {"tokenRequests": [{"audience": "aws-sts"}, {"audience": "gcp"}]},
        },
    ]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def client(database_url: str, store: GraphStore, api: FakeApiServer, tmp_path: Path) -> Iterator[TestClient]:
    apply_raw(store, objects())
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    settings = Settings(database_url=database_url, kubeconfig=kubeconfig, check_timeout=1.0)
    with TestClient(create_app(settings)) as c:
        yield c


def audience(aud: str) -> bytes:
    return token_request("mypod", "mypod-uid", audiences=[aud])


def test_audiences_the_pod_uses_need_no_access_review(client: TestClient, api: FakeApiServer) -> None:
    for aud in ("", "vault", "aws-sts", "gcp"):  # default token, projected token, PVC -> PV -> CSI driver
        assert post(client, audience(aud))["allowed"] is True, aud
    assert api.access_reviews == []


def test_other_audiences_are_asked_of_the_api_server(client: TestClient, api: FakeApiServer) -> None:
    out = post(client, audience("registry.example"))
    assert out["allowed"] is False and out["status"]["code"] == 403
    assert out["status"]["message"] == (
        SA + 'audience "registry.example" not found in pod spec volume, system:node:mynode is not authorized '
        "to request tokens for this audience"
    )
    (sent,) = api.access_reviews
    assert sent == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:node:mynode",
            "groups": ["system:nodes", "system:authenticated"],
            "resourceAttributes": {
                "namespace": "ns",
                "verb": "request-serviceaccounts-token-audience",
                "group": "",
                "version": "v1",
                "resource": "registry.example",
                "name": "mysa",
            },
        },
    }
    api.access[
        ("system:node:mynode", "request-serviceaccounts-token-audience", "ns", "registry.example", "*")
    ] = True
    assert post(client, audience("registry.example"))["allowed"] is True


def test_an_evaluation_error_refuses_with_it(client: TestClient, api: FakeApiServer) -> None:
    api.access[("*", "*", "*", "*", "*")] = (False, "webhook authorizer timed out")
    out = post(client, audience("registry.example"))
    assert out["status"]["message"] == (
        SA + 'audience "registry.example" not found in pod spec volume, error authorizing system:node:mynode '
        "to request tokens for this audience: webhook authorizer timed out"
    )


def test_an_api_server_that_does_not_answer_in_time_refuses(client: TestClient, api: FakeApiServer) -> None:
    api.access[("*", "*", "*", "*", "*")] = True
    api.access_delay = 3.0  # beyond the check deadline (1 s)
    out = post(client, audience("registry.example"))
    assert out["allowed"] is False
    assert out["status"]["code"] == 500 and "1s" in out["status"]["message"]


def test_an_unreachable_api_server_refuses_with_the_cause(
    database_url: str, store: GraphStore, tmp_path: Path
) -> None:
    apply_raw(store, objects())
    with FakeApiServer() as gone:
        kubeconfig = str(gone.write_kubeconfig(tmp_path / "kubeconfig"))
    with TestClient(create_app(Settings(database_url=database_url, kubeconfig=kubeconfig))) as c:
        out = post(c, audience("registry.example"))
    assert out["allowed"] is False
    assert out["status"]["message"].startswith(
        SA + 'audience "registry.example" not found in pod spec volume, error authorizing system:node:mynode '
        "to request tokens for this audience: SubjectAccessReview: URLError:"
    )


def pcr(**changes: str) -> bytes:
    spec = {
        "signerName": "example.com/a",
        "podName": "mypod",
        "podUID": "mypod-uid",
        "serviceAccountName": "web",
        "serviceAccountUID": "sa-uid",
        "nodeName": NODE,
        "nodeUID": f"{NODE}-uid",
        "pkixPublicKey": "MCowBQYDK2VwAyEA",
        "proofOfPossession": "c2ln",
        **changes,
    }
    obj = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": "web-0-x7k2p", "namespace": "ns"},
        "spec": spec,
    }
    return review("CREATE", "podcertificaterequests", name="web-0-x7k2p", namespace="ns", obj=obj)


def test_pod_certificate_requests_are_checked_against_the_store(
    client: TestClient, api: FakeApiServer
) -> None:
    assert post(client, pcr())["allowed"] is True
    out = post(client, pcr(serviceAccountName="default"))
    assert out["status"]["message"] == (
        PCR + 'PodCertificateRequest for pod "ns/mypod" contains serviceAccountName ("default") that differs '
        'from running pod ("web")'
    )
    out = post(client, pcr(serviceAccountUID="stale"))
    assert out["status"]["code"] == 500 and 'names service account UID "stale"' in out["status"]["message"]
    assert api.access_reviews == []
    out = post(client, pcr(signerName="example.com/b"))
    assert out["allowed"] is False
    (sent,) = api.access_reviews
    assert sent["spec"]["resourceAttributes"]["verb"] == "request-podcertificate-signer"
    assert sent["spec"]["resourceAttributes"]["resource"] == "example.com/b"
    api.access[("system:node:mynode", "request-podcertificate-signer", "ns", "example.com/b", "web")] = True
    assert post(client, pcr(signerName="example.com/b"))["allowed"] is True


# Upstream's integration cases (test/integration/auth/node_test.go, "ServiceAccountNodeAudienceRestriction"):
# the pod's volumes, the CSIDriver's token audience (None: no CSIDriver), the audience asked for, and
# upstream's refusal (None: allowed). PVC "mypvc" -> PV "mypv" (CSI com.example.csi.mydriver), PVC
# "mypvc-azurefile" -> in-tree azureFile PV, the ephemeral PVC "pod1-foo" -> "mypv".
MYDRIVER = "com.example.csi.mydriver"
CSI = {"name": "foo", "csi": {"driver": MYDRIVER}}
PVC = {"name": "foo", "persistentVolumeClaim": {"claimName": "mypvc"}}
EPHEMERAL = {"name": "foo", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeName": "mypv"}}}}
UPSTREAM_CASES: list[tuple[str, list[dict[str, Any]], tuple[str, str] | None, str, str | None]] = [
    ("projected volume source with empty audience works",
     [{"name": "foo", "projected": {"sources": [{"serviceAccountToken": {"audience": "", "path": "p"}}]}}],
     None, "", None),
    ("projected volume source with non-empty audience works",
     [{"name": "foo", "projected": {"sources": [{"serviceAccountToken": {"audience": "projected-audience"}}]}}],
     None, "projected-audience", None),
    ("pod --> csi --> driver --> tokenrequest with audience forbidden - CSI driver not found", [CSI], None,
     "csidrivernotfound-audience",
     'error validating audience "csidrivernotfound-audience": csidriver.storage.k8s.io "com.example.csi.mydriver" not found'),
    ("pod --> csi --> driver --> tokenrequest with audience works", [CSI], (MYDRIVER, "csidriver-audience"),
     "csidriver-audience", None),
    ("pod --> pvc --> pv --> csi --> driver --> tokenrequest with audience forbidden - CSI driver not found",
     [PVC], None, "pvc-csidrivernotfound-audience",
     'error validating audience "pvc-csidrivernotfound-audience": csidriver.storage.k8s.io "com.example.csi.mydriver" not found'),
    ("pod --> pvc --> pv --> csi --> driver --> tokenrequest with audience forbidden - pvc not found",
     [{"name": "foo", "persistentVolumeClaim": {"claimName": "mypvc1"}}], (MYDRIVER, "pvcnotfound-audience"),
     "pvcnotfound-audience", 'error validating audience "pvcnotfound-audience": persistentvolumeclaim "mypvc1" not found'),
    ("pod --> pvc --> pv --> csi --> driver --> tokenrequest with audience works", [PVC],
     (MYDRIVER, "pvccsidriver-audience"), "pvccsidriver-audience", None),
    ("pod --> ephemeral --> pvc --> pv --> csi --> driver --> tokenrequest with audience forbidden - CSI driver not found",
     [EPHEMERAL], None, "ephemeral-csidrivernotfound-audience",
     'error validating audience "ephemeral-csidrivernotfound-audience": csidriver.storage.k8s.io "com.example.csi.mydriver" not found'),
    ("pod --> ephemeral --> pvc --> pv --> csi --> driver --> tokenrequest with audience works", [EPHEMERAL],
     (MYDRIVER, "ephemeralcsidriver-audience"), "ephemeralcsidriver-audience", None),
    ("csidriver exists but tokenrequest audience not found should be forbidden", [],
     (MYDRIVER, "csidriver-audience"), "csidriver-audience-not-found",
     'audience "csidriver-audience-not-found" not found in pod spec volume, system:node:mynode is not authorized to request tokens for this audience'),
    ("pvc and csidriver exists but tokenrequest audience not found should be forbidden", [PVC],
     (MYDRIVER, "csidriver-audience"), "csidriver-audience-not-found",
     'audience "csidriver-audience-not-found" not found in pod spec volume, system:node:mynode is not authorized to request tokens for this audience'),
    ("ephemeral volume source with audience not found should be forbidden", [EPHEMERAL],
     (MYDRIVER, "csidriver-audience"), "csidriver-audience-not-found",
     'audience "csidriver-audience-not-found" not found in pod spec volume, system:node:mynode is not authorized to request tokens for this audience'),
    ("intree pv to csi migration, pod --> csi --> driver --> tokenrequest with audience works",
     [{"name": "foo", "persistentVolumeClaim": {"claimName": "mypvc-azurefile"}}],
     ("file.csi.azure.com", "csidriver-audience"), "csidriver-audience", None),
    ("intree inline volume to csi migration, pod --> csi --> driver --> tokenrequest with audience works",
     [{"name": "foo", "azureFile": {"shareName": "default", "secretName": "mypvsecret"}}],
     ("file.csi.azure.com", "csidriver-audience"), "csidriver-audience", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("volumes", "driver", "aud", "refusal"),
    [case[1:] for case in UPSTREAM_CASES],
    ids=[case[0] for case in UPSTREAM_CASES],
)
def test_upstream_audience_cases_end_to_end(
    database_url: str,
    store: GraphStore,
    api: FakeApiServer,
    tmp_path: Path,
    volumes: list[dict[str, Any]],
    driver: tuple[str, str] | None,
    aud: str,
    refusal: str | None,
) -> None:
    objs: list[dict[str, Any]] = [
        builders.node(NODE, uid=f"{NODE}-uid"),
        builders.pod("pod1", "ns", NODE, uid="pod1-uid", volumes=volumes),
        builders.pv("mypv", ("ns", "mypvc")) | {"spec": {"csi": {"driver": MYDRIVER, "volumeHandle": "h"}}},
        builders.pv("mypv-azurefile", ("ns", "mypvc-azurefile"))
        | {"spec": {"azureFile": {"shareName": "share", "secretName": "secret"}}},
    ]
    for claim, volume in (("mypvc", "mypv"), ("mypvc-azurefile", "mypv-azurefile"), ("pod1-foo", "mypv")):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": "ns", "uid": f"{claim}-uid"},
                "spec": {"volumeName": volume},
            }
        )
    if driver is not None:
        objs.append(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSIDriver",
                "metadata": {"name": driver[0]},
                "spec": {"tokenRequests": [{"audience": driver[1]}]},
            }
        )
    apply_raw(store, objs)
    settings = Settings(database_url=database_url, kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")))
    with TestClient(create_app(settings)) as client:
        body = token_request("pod1", "pod1-uid", audiences=[aud])
        out = post(client, body.replace(b'"name": "mysa"', b'"name": "default"'))
    if refusal is None:
        assert out["allowed"] is True, out
        assert api.access_reviews == []
    else:
        assert out["allowed"] is False
        assert out["status"]["message"] == 'serviceaccounts "default" is forbidden: ' + refusal
