"""``POST /authorize`` off raw ASGI answers exactly as the Starlette route does, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.graph.store import GraphStore
from app.web.app import create_app
from app.web.fast_authorize import WebhookApp
from app.web.settings import Settings
from tests.web.test_authorize import load_sample, review

BODIES = [
    json.dumps(review(verb="get", resource="secrets", namespace="shop", name="web-tls")).encode(),  # allowed
    json.dumps(review(verb="get", resource="secrets", namespace="shop", name="nope")).encode(),  # refused
    json.dumps(review("node-z", verb="get", resource="secrets", namespace="csi", name="publish")).encode(),
    b"{not json",
    b"[]",
]


@pytest.fixture
def app(database_url: str, store: GraphStore) -> Iterator[WebhookApp]:
    load_sample(store)
    app = create_app(Settings(database_url=database_url, denial_report=False))
    assert isinstance(app, WebhookApp) and app.authorizer is not None
    yield app


def test_the_fast_path_answers_as_the_route_does(app: WebhookApp) -> None:
    authorizer = app.authorizer
    with TestClient(app) as client:
        fast = [client.post("/authorize", content=b) for b in BODIES]
        app.authorizer = None  # now the Starlette route answers
        routed = [client.post("/authorize", content=b) for b in BODIES]
    app.authorizer = authorizer
    for a, b in zip(fast, routed, strict=True):
        assert (a.status_code, a.content, a.headers["content-type"]) == (
            b.status_code,
            b.content,
            b.headers["content-type"],
        )
        assert a.headers["content-length"] == str(len(a.content))
    assert [r.status_code for r in fast] == [200, 200, 200, 400, 400]


def test_other_methods_and_bad_lengths(app: WebhookApp) -> None:
    with TestClient(app) as client:
        assert client.get("/authorize").status_code == 405
        resp = client.post("/authorize", content=BODIES[0], headers={"Content-Length": "12x"})
        assert resp.status_code == 400 and resp.json() == {"error": "invalid Content-Length"}
