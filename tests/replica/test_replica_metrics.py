"""``nodeauthz run``: the writer child's metrics appear on the webhook's /metrics (multiprocess directory)."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine

from app.graph.explain import graph_totals
from tests.fake_apiserver import FakeApiServer
from tests.metrics import value
from tests.replica.test_replicas import Replica, eventually


def test_writer_metrics_reach_the_webhook_scrape(
    database_url: str, engine: Engine, cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    _server, kubeconfig = cluster
    replica = Replica("a", database_url, kubeconfig, tmp_path / "a.log")
    try:
        eventually(lambda: replica.get("/readyz").status_code == 200, "replica a ready")
        assert replica.allowed("n1", "web-tls") and not replica.allowed("n2", "web-tls")

        def scrape() -> str:
            text = replica.get("/metrics").text
            return text if value(text, "nodeauthz_objects", kind="node") == 2 else ""

        text = eventually(scrape, "the writer's counts")
        with engine.connect() as conn:
            objects, edges = graph_totals(conn)
        assert value(text, "nodeauthz_writer_is_leader") == 1
        assert value(text, "nodeauthz_writer_epoch") == 1
        assert value(text, "nodeauthz_ready") == 1
        assert value(text, "nodeauthz_objects", kind="pod") == objects["pod"] == 1
        assert value(text, "nodeauthz_edges") == edges > 0
        assert value(text, "nodeauthz_relists_total", resource="pods") == 1
        assert 0 <= value(text, "nodeauthz_sync_resource_version_age_seconds", resource="pods") < 30
        labels = {"webhook": "authorize", "resource": "secrets"}
        assert value(text, "nodeauthz_decisions_total", decision="allow", **labels) == 1
        assert value(text, "nodeauthz_decisions_total", decision="no_opinion", **labels) == 1
        assert httpx.get(f"http://127.0.0.1:{replica.port}/metrics", timeout=5).status_code == 200
    finally:
        assert replica.stop() == 0
