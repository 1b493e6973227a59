"""The authorization webhook end to end: reviews shaped like the API server's, against a loaded graph."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from app.authz.subject_access_review import MAX_REVIEW_BYTES
from app.graph.derivation import derive, owner_kind
from app.graph.reach import Reach
from app.graph.store import GraphStore
from app.k8s.feature_gates import DEFAULT_GATES
from app.web.app import create_app
from app.web.settings import Settings

NODE_GROUPS = ["system:nodes", "system:authenticated"]
NO_RELATIONSHIP = "no relationship found between node '{}' and this object"


def load_sample(store: GraphStore) -> None:
    doc = json.loads((resources.files("app") / "samples" / "sample-cluster.json").read_text())
    store.apply(derive(item) for item in doc["items"] if owner_kind(item) is not None)


def review(
    node: str | None = "node-a",
    *,
    version: str = "v1",
    user: str | None = None,
    groups: list[str] | None = None,
    fields: list[tuple[str, str, str]] | None = None,
    **attrs: str,
) -> dict[str, Any]:
    """A SubjectAccessReview as the API server encodes it: empty strings omitted, metadata/status present."""
    resource: dict[str, Any] = {k.replace("api_group", "group"): v for k, v in attrs.items() if v}
    resource.setdefault("version", "v1")
    if fields:
        resource["fieldSelector"] = {
            "requirements": [{"key": k, "operator": op, "values": [v]} for k, op, v in fields]
        }
    spec: dict[str, Any] = {
        "resourceAttributes": resource,
        "user": user or f"system:node:{node}",
        "uid": "2b7f4a3c",
        "extra": {"authentication.kubernetes.io/node-name": [node or ""]},
    }
    spec["groups" if version == "v1" else "group"] = NODE_GROUPS if groups is None else groups
    return {
        "apiVersion": f"authorization.k8s.io/{version}",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": False},
    }


@pytest.fixture
def client(database_url: str, store: GraphStore) -> Iterator[TestClient]:
    load_sample(store)
    with TestClient(create_app(Settings(database_url=database_url))) as c:
        yield c


def status(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/authorize", json=body)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["apiVersion"] == body["apiVersion"] and doc["kind"] == "SubjectAccessReview"
    assert "denied" not in doc["status"]  # refusals are no-opinion, never deny
    result: dict[str, Any] = doc["status"]
    return result


CASES = [
    # (id, review kwargs, allowed, reason)
    ("secret via pod", dict(verb="get", resource="secrets", namespace="shop", name="web-tls"), True, None),
    (
        "secret on another node",
        dict(node="node-c", verb="get", resource="secrets", namespace="shop", name="web-tls"),
        False,
        NO_RELATIONSHIP.format("node-c"),
    ),
    (
        "configmap",
        dict(node="node-b", verb="get", resource="configmaps", namespace="shop", name="web-config"),
        True,
        None,
    ),
    (
        "pv secret 3 hops",
        dict(node="node-c", verb="get", resource="secrets", namespace="shop", name="db-volume-key"),
        True,
        None,
    ),
    (
        "pv secret elsewhere",
        dict(verb="get", resource="secrets", namespace="shop", name="db-volume-key"),
        False,
        NO_RELATIONSHIP.format("node-a"),
    ),
    (
        "pv controller secret",
        dict(node="node-c", verb="get", resource="secrets", namespace="kube-system", name="csi-controller"),
        False,
        NO_RELATIONSHIP.format("node-c"),
    ),
    (
        "mirror pod grants nothing",
        dict(verb="get", resource="secrets", namespace="kube-system", name="apiserver-certs"),
        False,
        NO_RELATIONSHIP.format("node-a"),
    ),
    (
        "unbound pod",
        dict(verb="get", resource="secrets", namespace="shop", name="batch-token"),
        False,
        NO_RELATIONSHIP.format("node-a"),
    ),
    ("pod get", dict(verb="get", resource="pods", namespace="shop", name="web-7d4b9-x2k8f"), True, None),
    (
        "pod get elsewhere",
        dict(node="node-b", verb="get", resource="pods", namespace="shop", name="web-7d4b9-x2k8f"),
        False,
        NO_RELATIONSHIP.format("node-b"),
    ),
    (
        "pods list own node",
        dict(verb="list", resource="pods", fields=[("spec.nodeName", "In", "node-a")]),
        True,
        None,
    ),
    (
        "pods list other node",
        dict(verb="list", resource="pods", fields=[("spec.nodeName", "In", "node-b")]),
        False,
        "can only list/watch pods with spec.nodeName field selector",
    ),
    (
        "pods watch unfiltered",
        dict(verb="watch", resource="pods"),
        False,
        "can only list/watch pods with spec.nodeName field selector",
    ),
    (
        "resourceslices list",
        dict(
            verb="list",
            api_group="resource.k8s.io",
            resource="resourceslices",
            fields=[("spec.nodeName", "In", "node-a")],
        ),
        True,
        None,
    ),
    (
        "resourceslices list unfiltered",
        dict(verb="list", api_group="resource.k8s.io", resource="resourceslices"),
        False,
        "can only list/watch/deletecollection resourceslices with nodeName field selector",
    ),
    (
        "resourceslice get",
        dict(
            verb="get",
            api_group="resource.k8s.io",
            resource="resourceslices",
            name="node-a-gpu.example.com-7kq2x",
        ),
        True,
        None,
    ),
    (
        "serviceaccount token",
        dict(verb="create", resource="serviceaccounts", subresource="token", namespace="shop", name="web"),
        True,
        None,
    ),
    (
        "serviceaccount token elsewhere",
        dict(
            node="node-c",
            verb="create",
            resource="serviceaccounts",
            subresource="token",
            namespace="shop",
            name="web",
        ),
        False,
        NO_RELATIONSHIP.format("node-c"),
    ),
    ("static rule", dict(verb="list", resource="services"), True, None),
    (
        "non-node user",
        dict(
            user="alice",
            groups=["system:authenticated"],
            verb="get",
            resource="secrets",
            namespace="shop",
            name="web-tls",
        ),
        False,
        None,
    ),
    (
        "node name without group",
        dict(
            groups=["system:authenticated"], verb="get", resource="secrets", namespace="shop", name="web-tls"
        ),
        False,
        None,
    ),
]


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_decisions(client: TestClient, version: str) -> None:
    for case_id, kwargs, allowed, reason in CASES:
        got = status(client, review(version=version, **kwargs))  # type: ignore[arg-type]
        assert got["allowed"] is allowed, case_id
        assert got.get("reason") == reason, case_id


def test_v1beta1_reads_group_not_groups(client: TestClient) -> None:
    body = review(version="v1beta1", verb="get", resource="secrets", namespace="shop", name="web-tls")
    body["spec"]["groups"] = body["spec"].pop("group")  # the v1 spelling is not read in v1beta1
    assert status(client, body) == {"allowed": False}


def test_the_app_reads_its_gates_from_settings(database_url: str, store: GraphStore) -> None:
    load_sample(store)
    list_slices = review(verb="list", api_group="resource.k8s.io", resource="resourceslices")
    get_pcr = review(verb="create", api_group="certificates.k8s.io", resource="podcertificaterequests")
    get_pcr["spec"]["resourceAttributes"]["namespace"] = "shop"
    with TestClient(create_app(Settings(database_url=database_url))) as c:
        assert status(c, list_slices)["allowed"] is False
        assert status(c, get_pcr) == {"allowed": True}  # PodCertificateRequest: on by default
    # Only a pre-1.32 gate set turns selectors off (the gate is locked on since 1.34).
    old = DEFAULT_GATES.with_gate("AuthorizeNodeWithSelectors", False).with_gate(
        "PodCertificateRequest", False
    )
    with TestClient(create_app(Settings(database_url=database_url, feature_gates=old))) as c:
        assert status(c, list_slices) == {"allowed": True}
        assert status(c, get_pcr) == {"allowed": False}


def test_audit_line_for_node_refusals_only(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nodeauthz.audit")
    status(client, review(node="node-c", verb="get", resource="secrets", namespace="shop", name="web-tls"))
    status(
        client, review(user="alice", groups=[], verb="get", resource="secrets", namespace="shop", name="x")
    )
    status(client, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))
    lines = [
        r.getMessage() for r in caplog.records if r.name == "nodeauthz.audit" and r.levelno == logging.INFO
    ]
    assert len(lines) == 1
    assert lines[0].startswith("NODE DENY: 'node-c' ")
    assert '"name":"web-tls"' in lines[0] and NO_RELATIONSHIP.format("node-c") in lines[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"apiVersion": "authorization.k8s.io/v1", "kind": ', "malformed JSON"),
        (json.dumps({**review(verb="get", resource="pods"), "kind": "TokenReview"}).encode(), "kind"),
        (b"[]", "JSON object"),
    ],
)
def test_bad_input_is_400(client: TestClient, body: bytes, message: str) -> None:
    resp = client.post("/authorize", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert message in resp.json()["error"]
    assert "status" not in resp.json()


def test_oversized_body_refused_by_header_and_by_stream(client: TestClient) -> None:
    body = review(verb="get", resource="secrets", namespace="shop", name="web-tls")
    body["spec"]["extra"] = {"padding": ["x" * MAX_REVIEW_BYTES]}
    raw = json.dumps(body).encode()
    resp = client.post("/authorize", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "limit" in resp.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for i in range(0, len(raw), 4096):
            yield raw[i : i + 4096]

    resp = client.post("/authorize", content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "limit" in resp.json()["error"]


def test_database_failure_is_not_allowed(client: TestClient, engine: Engine) -> None:
    body = review(verb="get", resource="secrets", namespace="shop", name="web-tls")
    assert status(client, body) == {"allowed": True}
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE edges RENAME TO edges_gone"))
    try:
        got = status(client, body)
        assert got["allowed"] is False
        assert got["reason"].startswith("nodeauthz: graph check failed: ")
        # Static rules need no database and still answer.
        assert status(client, review(verb="list", resource="services")) == {"allowed": True}
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE edges_gone RENAME TO edges"))


def test_missing_database_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/absent.db")
    with TestClient(create_app(settings)) as c:
        got = status(c, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))
        assert got == {"allowed": False, "reason": "nodeauthz: graph check failed: OperationalError"}
        assert c.get("/readyz").status_code == 503
    assert not (tmp_path / "absent.db").exists()  # never creates an empty database


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["ready"] is True


def test_readyz_false_without_schema_revision(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("DELETE FROM alembic_version"))
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["ready"] is False and "migrate" in resp.json()["checks"]["schema"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})


def test_readyz_false_on_unmigrated_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with TestClient(create_app(Settings(database_url=f"sqlite:///{path}"))) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503
    assert resp.json() == {
        "ready": False,
        "checks": {"database": "ok", "schema": resp.json()["checks"]["schema"]},
    }
    assert "not migrated" in resp.json()["checks"]["schema"]


@dataclass
class _Report:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


def test_readiness_callable_replaces_default(tmp_path: Path) -> None:
    async def readiness() -> _Report:
        return _Report(False, {"graph": "not synced: pods"})

    settings = Settings(database_url=f"sqlite:///{tmp_path}/absent.db")
    with TestClient(create_app(settings, readiness=readiness)) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503
    assert resp.json() == {"ready": False, "checks": {"graph": "not synced: pods"}}


class _TruncatingReader:
    """A graph whose walk always hits the depth bound: the answer must say so, not guess."""

    async def reach(self, node: str, kind: str, namespace: str, name: str) -> Reach:
        return Reach(found=False, truncated=True)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        raise AssertionError("a reader passed in belongs to the caller")


def test_depth_bound_is_reported(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/unused.db"), reader=_TruncatingReader())
    with TestClient(app) as c:
        got = status(c, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))
    assert got["allowed"] is False
    assert got["reason"].startswith("nodeauthz: graph check could not complete: graph walk stopped at depth")
