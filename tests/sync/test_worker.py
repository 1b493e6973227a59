"""The sync worker end to end: fake API server -> informers -> GraphStore, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.graph.explain import graph_stats
from app.graph.fence import Fence, LeaseLost
from app.graph.reach import has_path
from app.graph.store import GraphStore
from app.ha.lease_record import read_lease
from app.sync.api_client import KubeApi
from app.sync.informer import InformerConfig
from app.sync.worker import SyncWorker
from tests.fake_apiserver import FakeApiServer
from tests.metrics import value
from tests.replica.test_replicas import free_port
from tests.threads import running
from tests.writers import fenced

FAST = InformerConfig(page_size=50, watch_timeout=(5, 5), backoff_initial=0.05, backoff_max=0.2, poll=0.05)
REPO = Path(__file__).resolve().parents[2]


def pod(name: str, node: str | None = "n1", secret: str | None = None, ns: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if secret:
        spec["volumes"] = [{"name": "v", "secret": {"secretName": secret}}]
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def reachable(engine: Engine, node: str, kind: str, namespace: str, name: str) -> bool:
    with engine.connect() as conn:
        return has_path(conn, node, kind, namespace, name).found


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as s:
        yield s


@pytest.fixture
def api(server: FakeApiServer, tmp_path: Path) -> Iterator[KubeApi]:
    client = KubeApi.from_config(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    yield client
    client.close()


def worker_for(store: GraphStore, api: KubeApi, **kwargs: Any) -> SyncWorker:
    return SyncWorker(store, api, config=FAST, **kwargs)


def test_bound_pod_is_reachable_and_deleted_pod_is_not(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    server.create("pods", pod("web", node=None, secret="web-tls"))
    worker = worker_for(store, api)
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
        assert store.owned_keys("pod") == {("pod", "default", "web")}  # unbound pods are stored, edge-less
        assert not reachable(engine, "n1", "secret", "default", "web-tls")
        server.update("pods", pod("web", node="n1", secret="web-tls"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "web-tls"))
        assert not reachable(engine, "n2", "secret", "default", "web-tls")
        server.delete("pods", "web", "default")
        wait_for(lambda: not reachable(engine, "n1", "secret", "default", "web-tls"))
        assert store.owned_keys("pod") == set()
        freshness = worker.freshness()
        assert freshness.samples == 2 and freshness.p50 is not None and freshness.p99 is not None
        assert 0 <= freshness.p50 <= freshness.p99 < 5
    assert store.resource_version("pods") == server.resource_version


def test_list_is_paged(server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine) -> None:
    for i in range(120):
        server.create("pods", pod(f"p{i}", node=f"n{i % 7}", secret=f"s{i}"))
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    assert server.requests["list:pods"] == 3  # 50 + 50 + 20
    assert all(reachable(engine, f"n{i % 7}", "secret", "default", f"s{i}") for i in range(120))
    assert store.resource_version("pods") == server.resource_version


def test_restart_resumes_the_watch_from_the_stored_position(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    server.create("pods", pod("a", secret="sa"))
    server.create("pods", pod("b", secret="sb"))
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    server.delete("pods", "a", "default")  # while the worker is down
    restarted = worker_for(store, api, resources=["pods"])
    with running(restarted):
        wait_for(lambda: not reachable(engine, "n1", "secret", "default", "sa"))
    assert reachable(engine, "n1", "secret", "default", "sb")
    assert server.requests["list:pods"] == 1  # the restart watched, it did not list
    assert not restarted.initial_sync_done


def test_restart_after_compaction_relists_and_never_drops_a_live_pod(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    server.create("pods", pod("live", secret="s-live"))
    for i in range(60):
        server.create("pods", pod(f"doomed{i}", secret=f"s{i}"))
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    for i in range(60):
        server.delete("pods", f"doomed{i}", "default")
    server.create("pods", pod("newcomer", secret="s-new"))
    server.compact()  # the stored position is now too old: 410
    restarted = worker_for(store, api, resources=["pods"])
    live_checks: list[bool] = []
    with running(restarted):
        while not restarted.initial_sync_done:
            live_checks.append(reachable(engine, "n1", "secret", "default", "s-live"))
    assert live_checks and all(live_checks)
    assert server.requests["list:pods"] == 3  # 61 pods in 2 pages, then 2 pods in 1
    assert store.owned_keys("pod") == {("pod", "default", "live"), ("pod", "default", "newcomer")}
    assert reachable(engine, "n1", "secret", "default", "s-new")
    assert not any(reachable(engine, "n1", "secret", "default", f"s{i}") for i in range(60))
    assert store.resource_version("pods") == server.resource_version


def test_cut_watch_resumes_without_relist(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: server.watch_count("pods") == 1)
        server.cut_watches()
        server.create("pods", pod("a", secret="sa"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "sa"))
    assert server.requests["list:pods"] == 1
    assert server.requests["watch:pods"] >= 2


def test_malformed_objects_are_skipped(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    from app.web.metrics import render_metrics
    from tests.metrics import delta

    bad = pod("bad-listed", secret="s-bad")
    bad["spec"]["nodeName"] = 42
    server.create("pods", bad)
    server.create("pods", pod("good", secret="s-good"))
    worker = worker_for(store, api, resources=["pods"])
    before = render_metrics()[0].decode()
    with running(worker) as errors:
        wait_for(lambda: worker.initial_sync_done)
        worker_bad = pod("bad-watched", secret="s-bad2")
        worker_bad["spec"]["volumes"] = "not a list"
        server.create("pods", worker_bad)
        server.create("pods", pod("after", secret="s-after"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "s-after"))
    assert not errors
    assert reachable(engine, "n1", "secret", "default", "s-good")
    assert store.owned_keys("pod") == {("pod", "default", "good"), ("pod", "default", "after")}
    after = render_metrics()[0].decode()
    assert delta(before, after, "nodeauthz_skipped_objects_total", kind="pod", reason="invalid") == 2


def test_bookmarks_advance_the_stored_position(
    server: FakeApiServer, api: KubeApi, store: GraphStore
) -> None:
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: server.watch_count("pods") == 1)
        listed_at = store.resource_version("pods")
        server.create("nodes", {"metadata": {"name": "n1"}})  # not watched here: only the version moves
        server.bookmark()
        wait_for(lambda: store.resource_version("pods") == server.resource_version)
    assert listed_at != server.resource_version


def test_resources_the_cluster_does_not_serve_are_skipped(
    api: KubeApi, server: FakeApiServer, store: GraphStore, engine: Engine
) -> None:
    server.served.update(podcertificaterequests=None, resourceslices="resource.k8s.io/v1beta1")
    server.create("resourceslices", {"metadata": {"name": "gpu-n1"}, "spec": {"nodeName": "n1"}})
    worker = worker_for(store, api)
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
    assert set(worker.skipped) == {"podcertificaterequests"}
    assert [s.version for s in worker.served if s.name == "resourceslices"] == ["v1beta1"]
    assert reachable(engine, "n1", "resourceslice", "", "gpu-n1")
    assert not any(k.endswith("podcertificaterequests") for k in server.requests)


def test_lost_lease_stops_the_worker(server: FakeApiServer, api: KubeApi, store: GraphStore) -> None:
    server.create("pods", pod("a"))
    worker = worker_for(fenced(store.engine, Fence("graph-writer", "someone-else", 7)), api)
    stop = threading.Event()
    started = time.monotonic()
    with pytest.raises(LeaseLost):
        worker.run(stop)
    assert time.monotonic() - started < 5
    assert store.owned_keys("pod") == set()


def test_cli_refuses_a_database_not_at_head(tmp_path: Path, server: FakeApiServer) -> None:
    from app.cli.main import main

    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sqlite3.connect(tmp_path / "empty.db").close()
    assert main(["--database-url", url, "sync", "--kubeconfig", str(kubeconfig)]) == 2
    assert main(["--database-url", url, "sync", "--resources", "pods,secrets"]) == 2


def _sync_process(
    database_url: str, server: FakeApiServer, tmp_path: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``nodeauthz sync`` of pods and nodes against ``server``, which gets pod "a" with secret "sa" first."""
    server.create("pods", pod("a", secret="sa"))
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--database-url", database_url, "sync", "--kubeconfig", str(kubeconfig)]
        + ["--resources", "pods,nodes", *extra],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_cli_sync_runs_until_sigterm(
    database_url: str, engine: Engine, server: FakeApiServer, tmp_path: Path
) -> None:
    metrics_port = free_port()
    proc = _sync_process(database_url, server, tmp_path, "--metrics-port", str(metrics_port))
    try:
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "sa"), timeout=20)
        server.create("pods", pod("b", secret="sb"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "sb"))
        scrape = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_for(lambda: value(httpx.get(scrape, timeout=5).text, "nodeauthz_objects", kind="pod") == 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_sync_stops_and_releases_the_lease_on_a_burst_of_signals(
    database_url: str, engine: Engine, server: FakeApiServer, tmp_path: Path
) -> None:
    """A writer gets SIGTERM twice when its parent dies (the kernel's parent-death signal, then its
    watchdog's), and an operator's Ctrl-C comes in repeats. A handler that took a lock deadlocked
    when the next signal landed inside it: the writer hung on, holding the lease, headless."""
    proc = _sync_process(database_url, server, tmp_path)
    try:
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "sa"), timeout=20)
        for i in range(2000):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        with engine.connect() as conn:
            lease = read_lease(conn)
        assert lease is not None and lease.expired, "the lease was not given back for a peer"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def longest_name(prefix: str) -> str:
    return (prefix + "x" * 253)[:253]  # a valid DNS subdomain of the maximum length


def test_the_longest_names_kubernetes_derives_are_stored(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    """A 253-character pod with an ephemeral volume implies the claim ``<pod>-<volume>`` (317 chars)."""
    name = longest_name("pod-")
    volume = "v" * 63
    long_pod = pod(name)
    long_pod["spec"]["volumes"] = [{"name": volume, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]
    server.create("pods", long_pod)
    worker = worker_for(store, api, resources=["pods"])
    with running(worker) as errors:
        wait_for(lambda: worker.initial_sync_done)
        server.create("pods", pod("after", secret="s-after"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "s-after"))
    assert not errors and worker.set_aside == 0
    assert reachable(engine, "n1", "pvc", "default", f"{name}-{volume}")


def test_an_object_the_database_refuses_is_set_aside_and_blocks_nothing(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    """PostgreSQL enforces column sizes; SQLite stores any length (there nothing is refused)."""
    refused = "s" * 600  # no real API server accepts this; a database must never be blocked by it
    server.create("pods", pod("listed-good", secret="s-1"))
    server.create("pods", pod("listed-bad", secret=refused))
    worker = worker_for(store, api, resources=["pods"])
    with running(worker) as errors:
        wait_for(lambda: worker.initial_sync_done)
        server.create("pods", pod("watched-bad", secret=refused))
        server.create("pods", pod("after", secret="s-after"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "s-after"))
        assert reachable(engine, "n1", "secret", "default", "s-1")
        if engine.dialect.name == "postgresql":
            assert worker.set_aside == 2
            with engine.connect() as conn:
                unstored = graph_stats(conn)["unstored"]
            assert {u["name"] for u in unstored} == {"listed-bad", "watched-bad"}  # type: ignore[index]
            assert all("too long" in u["reason"] for u in unstored)  # type: ignore[index]
            server.delete("pods", "listed-bad", "default")  # deleted in the cluster: no longer set aside
            wait_for(lambda: _unstored_names(engine) == {"watched-bad"})
    assert not errors


def _unstored_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {u["name"] for u in graph_stats(conn)["unstored"]}  # type: ignore[index, union-attr]


def test_an_update_that_cannot_be_stored_removes_the_access_it_granted(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores values of any length: nothing is refused")
    server.create("pods", pod("web", secret="old-secret"))
    worker = worker_for(store, api, resources=["pods"])
    with running(worker) as errors:
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "old-secret"))
        server.update("pods", pod("web", secret="s" * 600))
        wait_for(lambda: not reachable(engine, "n1", "secret", "default", "old-secret"))
        assert _unstored_names(engine) == {"web"}
    assert not errors


def test_the_writer_counts_what_it_commits_and_how_its_watches_fare(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    from app.graph.explain import graph_totals
    from app.sync.metrics import sync_metrics
    from app.web.metrics import render_metrics
    from tests.metrics import delta

    server.create("pods", pod("web", secret="web-tls"))
    server.create("pods", pod("api", secret="api-tls"))
    store.apply([])  # nothing yet: the worker's first COUNT starts from an empty graph
    before = render_metrics()[0].decode()
    worker = worker_for(store, api, resources=["pods"])
    with running(worker):
        wait_for(lambda: worker.initial_sync_done)
        server.create("pods", pod("db", secret="db-pass"))
        server.update("pods", pod("web", secret="web-tls-2"))
        server.delete("pods", "api", "default")
        wait_for(lambda: not reachable(engine, "n1", "secret", "default", "api-tls"))
        wait_for(lambda: reachable(engine, "n1", "secret", "default", "db-pass"))
        server.create("nodes", {"metadata": {"name": "n9"}})  # moves the resourceVersion past the pods'
        server.compact()
        server.cut_watches()  # the pods watch breaks; watching again from its position gets 410: a re-list
        server.create("pods", pod("late"))
        wait_for(lambda: reachable(engine, "n1", "pod", "default", "late"))
    after = render_metrics()[0].decode()
    with engine.connect() as conn:
        objects, edges = graph_totals(conn)
    assert worker.object_counts["pod"] == objects["pod"] == 3
    assert worker.edge_count == edges
    assert sync_metrics().objects.labels("pod")._value.get() == 3  # what /metrics shows
    assert delta(before, after, "nodeauthz_relists_total", resource="pods") == 2  # first sync + after 410
    assert delta(before, after, "nodeauthz_watch_restarts_total", resource="pods", reason="error") == 1
    assert delta(before, after, "nodeauthz_watch_restarts_total", resource="pods", reason="gone") == 1
    # One lag sample per watch event committed (db, web, api); "late" came with the re-list.
    assert delta(before, after, "nodeauthz_sync_lag_seconds_count", resource="pods") == 3
