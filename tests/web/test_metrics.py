"""``/metrics`` after known traffic: exact counts of decisions, latencies, errors; bounded labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.graph.store import GraphStore
from app.graph.write_results import SyncMark
from app.web.app import create_app
from app.web.settings import Settings
from tests.metrics import delta, value
from tests.web.test_authorize import load_sample, review, status


@pytest.fixture
def client(database_url: str, store: GraphStore) -> Iterator[TestClient]:
    load_sample(store)
    with TestClient(create_app(Settings(database_url=database_url, denial_report=False))) as c:
        yield c


def scrape(client: TestClient) -> str:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


def decisions(before: str, after: str, webhook: str, decision: str, resource: str) -> float:
    return delta(
        before, after, "nodeauthz_decisions_total", webhook=webhook, decision=decision, resource=resource
    )


def test_counts_after_known_traffic(client: TestClient) -> None:
    before = scrape(client)
    allowed = dict(verb="get", resource="secrets", namespace="shop", name="web-tls")
    refused = dict(node="node-c", verb="get", resource="secrets", namespace="shop", name="web-tls")
    for _ in range(3):
        assert status(client, review(**allowed))["allowed"] is True
    for _ in range(2):
        assert status(client, review(**refused))["allowed"] is False
    # Decided by the static rules alone: no graph check.
    assert status(client, review(verb="get", resource="services", namespace="shop", name="x"))["allowed"]
    # A made-up resource name is counted as "other", never as a label value of its own.
    assert not status(client, review(verb="get", resource="made-up-7f3a", namespace="shop", name="x"))[
        "allowed"
    ]
    assert client.post("/authorize", content=b"{not json").status_code == 400
    after = scrape(client)

    assert decisions(before, after, "authorize", "allow", "secrets") == 3
    assert decisions(before, after, "authorize", "no_opinion", "secrets") == 2
    assert decisions(before, after, "authorize", "allow", "other") == 1  # services: a static rule
    assert decisions(before, after, "authorize", "no_opinion", "other") == 1
    assert decisions(before, after, "authorize", "invalid", "") == 1
    assert "made-up-7f3a" not in after
    assert delta(before, after, "nodeauthz_decision_duration_seconds_count", webhook="authorize") == 8
    assert delta(before, after, "nodeauthz_graph_check_duration_seconds_count") == 5
    # The slowest bucket holds everything; the first (100 us) at most what was observed.
    assert delta(before, after, "nodeauthz_graph_check_duration_seconds_bucket", le="5.0") == 5
    assert value(after, "nodeauthz_ready") == 1


def test_a_failed_check_counts_as_an_error_and_a_database_error(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/absent.db", denial_report=False)
    with TestClient(create_app(settings)) as c:
        before = scrape(c)
        got = status(c, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))
        assert got["allowed"] is False
        after = scrape(c)
    assert decisions(before, after, "authorize", "error", "secrets") == 1
    assert delta(before, after, "nodeauthz_database_errors_total", operation="graph_check") == 1
    assert value(after, "nodeauthz_ready") == 0


def test_the_probe_listener_serves_metrics_but_no_reviews(database_url: str, client: TestClient) -> None:
    with TestClient(create_app(Settings(database_url=database_url), health_only=True)) as probes:
        text = scrape(probes)
        assert probes.post("/authorize", json=review(verb="get", resource="secrets")).status_code in (
            404,
            405,
        )
    assert "nodeauthz_decisions_total" in text or "nodeauthz_decisions" in text
    assert value(text, "nodeauthz_ready") == 1


def test_metrics_off_records_no_decisions(database_url: str, client: TestClient) -> None:
    settings = Settings(database_url=database_url, metrics=False, denial_report=False)
    with TestClient(create_app(settings)) as quiet:
        before = scrape(quiet)
        status(quiet, review(verb="get", resource="secrets", namespace="shop", name="web-tls"))
        after = scrape(quiet)
    assert decisions(before, after, "authorize", "allow", "secrets") == 0


def test_resource_version_age_comes_from_the_shared_sync_state(client: TestClient, store: GraphStore) -> None:
    store.mark(SyncMark("pods", "42"))
    text = scrape(client)
    age = value(text, "nodeauthz_sync_resource_version_age_seconds", resource="pods")
    assert 0 <= age < 60
