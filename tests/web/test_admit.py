"""The admission webhook end to end: AdmissionReviews over HTTP, lookups from the real store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from app.graph.store import GraphStore
from app.web.app import create_app
from app.web.settings import Settings
from tests import builders
from tests.admission.test_restriction import create_mirror, eviction, pod, review, token_request
from tests.metrics import delta
from tests.writers import apply_raw

NODE = "mynode"  # the node user of tests.admission.test_restriction's reviews
# kube-api-access-*: the projected token (no audience) the API server adds to every pod.
DEFAULT_TOKEN_VOLUME = {
    "name": "kube-api-access",
    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
}


@pytest.fixture
def client(database_url: str, store: GraphStore) -> Iterator[TestClient]:
    apply_raw(
        store,
        (
            builders.node(NODE, uid=f"{NODE}-uid"),
            builders.node("othernode", uid="othernode-uid"),
            builders.pod("mypod", "ns", NODE, uid="mypod-uid", volumes=[DEFAULT_TOKEN_VOLUME]),
            builders.pod("otherpod", "ns", "othernode", uid="otherpod-uid"),
        ),
    )
    with TestClient(create_app(Settings(database_url=database_url))) as c:
        yield c


def post(client: TestClient, body: bytes) -> dict[str, Any]:
    resp = client.post("/admit", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
    assert doc["response"]["uid"] == json.loads(body)["request"]["uid"]
    assert "patch" not in doc["response"] and "patchType" not in doc["response"]
    result: dict[str, Any] = doc["response"]
    return result


def test_mirror_pod_uses_the_node_uid_from_the_store(client: TestClient) -> None:
    assert post(client, create_mirror(pod("static", mirror=True)))["allowed"] is True
    wrong = pod("static", mirror=True)
    wrong["metadata"]["ownerReferences"][0]["uid"] = "stale-uid"
    out = post(client, create_mirror(wrong))
    assert out["allowed"] is False and out["status"]["code"] == 403
    assert out["status"]["message"] == (
        'pods "static" is forbidden: node mynode UID mismatch: expected stale-uid got mynode-uid'
    )


def test_token_requests_are_checked_against_stored_pods(client: TestClient) -> None:
    assert post(client, token_request("mypod", "mypod-uid"))["allowed"] is True
    other = post(client, token_request("otherpod", "otherpod-uid"))
    assert other["allowed"] is False
    assert other["status"]["message"] == (
        'serviceaccounts "mysa" is forbidden: node requested token bound to a pod scheduled on a different node'
    )
    recreated = post(client, token_request("mypod", "old-uid"))
    assert "does not match the UID in record" in recreated["status"]["message"]
    missing = post(client, token_request("nopod", "x"))
    assert missing["status"]["code"] == 404
    assert missing["status"]["message"] == 'pod "nopod" not found (no record in the nodeauthz store)'


def test_eviction_of_own_pod_only(client: TestClient) -> None:
    own = review("CREATE", "pods", sub="eviction", name="mypod", namespace="ns", obj=eviction("mypod"))
    assert post(client, own)["allowed"] is True
    other = review(
        "CREATE", "pods", sub="eviction", name="otherpod", namespace="ns", obj=eviction("otherpod")
    )
    assert post(client, other)["status"]["message"] == (
        'pods "otherpod" is forbidden: node mynode can only evict pods with spec.nodeName set to itself'
    )


def test_non_node_users_pass_untouched(client: TestClient) -> None:
    body = review(
        "CREATE",
        "pods",
        name="x",
        namespace="ns",
        obj=pod("x", "othernode"),
        user="alice",
        groups=["system:authenticated"],
    )
    assert post(client, body) == {"uid": json.loads(body)["request"]["uid"], "allowed": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "JSON"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}
            ).encode(),
            "admission.k8s.io/v1",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "request"),
    ],
)
def test_malformed_reviews_are_400_and_never_allowed(client: TestClient, body: bytes, message: str) -> None:
    resp = client.post("/admit", content=body)
    assert resp.status_code == 400
    assert message in resp.json()["error"]
    assert "allowed" not in resp.text


def test_store_failure_refuses_with_the_cause(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE edges"))
        conn.execute(text("DROP TABLE objects"))
    out = post(client, token_request("mypod", "mypod-uid"))
    assert out["allowed"] is False
    assert out["status"]["code"] == 500 and out["status"]["reason"] == "InternalError"
    assert out["status"]["message"].startswith("nodeauthz: admission check failed:")


def test_check_admission_cli(database_url: str, store: GraphStore, tmp_path: Path) -> None:
    apply_raw(store, [builders.pod("mypod", "ns", NODE, uid="mypod-uid", volumes=[DEFAULT_TOKEN_VOLUME])])
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(token_request("mypod", "mypod-uid"))
    bad.write_bytes(token_request("mypod", "old-uid"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "--database-url", database_url, "check-admission", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run(str(good))
    assert ok.returncode == 0 and ok.stdout.startswith("allowed: CREATE serviceaccounts/token ns/mysa")
    refused = run(str(bad))
    assert refused.returncode == 1 and "does not match the UID in record" in refused.stdout
    (tmp_path / "junk.json").write_text("[]")
    assert run(str(tmp_path / "junk.json")).returncode == 2


# ---- upstream 1.33+ security fixes, end to end ------------------------------------------------


def test_node_may_not_add_an_owner_reference_to_itself(client: TestClient) -> None:
    # CVE-2025-5187: `kubectl patch node` by the kubelet's credentials, as the apiserver reviews it.
    old = builders.node(NODE, uid=f"{NODE}-uid")
    new = json.loads(json.dumps(old))
    new["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "does-not-exist", "uid": "0d6f0c5e"}
    ]
    out = post(client, review("UPDATE", "nodes", name=NODE, obj=new, old=old))
    assert out["allowed"] is False and out["status"]["code"] == 403
    assert out["status"]["message"] == (
        'nodes "mynode" is forbidden: node "mynode" is not allowed to modify ownerReferences'
    )
    assert post(client, review("UPDATE", "nodes", sub="status", name=NODE, obj=old, old=old))["allowed"]


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            'node "mynode" can not create pods that reference serviceaccounts (via projected volumes)',
        ),
        (
            {"name": "data", "csi": {"driver": "secrets-store.csi.k8s.io"}},
            'node "mynode" can not create pods that reference csidrivers (via CSI volumes)',
        ),
        (
            {"name": "new", "someFutureVolume": {}},
            'error checking mirror pod for API references: unknown volume type for volume  "new"',
        ),
    ],
)
def test_mirror_pod_api_references_are_refused(client: TestClient, volume: Any, message: str) -> None:
    out = post(client, create_mirror(pod("static", mirror=True, volumes=[volume])))
    assert out["allowed"] is False and out["status"]["code"] == 403
    assert out["status"]["message"] == f'pods "static" is forbidden: {message}'


def test_pod_status_may_not_change_the_extended_resource_claim(client: TestClient) -> None:
    old = pod("mypod")
    new = json.loads(json.dumps(old))
    new["status"]["extendedResourceClaimStatus"] = {
        "resourceClaimName": "stolen-claim",
        "requestMappings": [{"containerName": "c", "resourceName": "example.com/gpu", "requestName": "r"}],
    }
    body = review("UPDATE", "pods", sub="status", name="mypod", namespace="ns", obj=new, old=old)
    out = post(client, body)
    assert out["allowed"] is False
    assert out["status"]["message"] == (
        'pods "mypod" is forbidden: node "mynode" cannot update extended resource claim status'
    )


def test_admission_decisions_are_counted(client: TestClient) -> None:
    before = client.get("/metrics").text
    assert post(client, token_request("mypod", "mypod-uid"))["allowed"] is True
    assert post(client, token_request("otherpod", "otherpod-uid"))["allowed"] is False
    assert post(client, token_request("nopod", "x"))["status"]["code"] == 404
    after = client.get("/metrics").text

    def decided(decision: str) -> float:
        labels = {"webhook": "admit", "decision": decision, "resource": "serviceaccounts"}
        return delta(before, after, "nodeauthz_decisions_total", **labels)

    assert (decided("allow"), decided("deny"), decided("error")) == (1, 2, 0)
    assert delta(before, after, "nodeauthz_decision_duration_seconds_count", webhook="admit") == 3
