"""Big lists parsed in a child process (app.sync.list_child): real processes, a real fake API server.

The child path must write what the thread path writes, and a child that dies,
meets an expired continue token, or loses its parent must leave neither a
half-applied list nor a process behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.graph.database import make_engine
from app.graph.store import GraphStore
from app.sync.api_client import KubeApi
from app.sync.informer import InformerConfig
from app.sync.worker import SyncWorker
from tests.fake_apiserver import FakeApiServer
from tests.servers import nodeauthz_script
from tests.sync.test_worker import FAST, pod, reachable, wait_for
from tests.threads import running
from tests.writers import apply_raw, lease_holding_store

CHILD = replace(FAST, page_size=100, list_children=1, list_child_min_items=0)
THREAD = replace(FAST, page_size=100, list_children=0)
PODS = 640  # seven pages of 100


def fill(server: FakeApiServer, count: int = PODS) -> None:
    pods: list[dict[str, Any]] = []
    for i in range(count):
        p = pod(f"p{i:05d}", node=f"n{i % 13}" if i % 11 else None, secret=f"s{i % 97}", ns=f"ns{i % 3}")
        p["spec"]["volumes"].append({"name": "c", "configMap": {"name": f"cm{i % 5}"}})
        p["spec"]["serviceAccountName"] = f"sa{i % 4}"
        if i == 350:  # on a page the child parses
            p["spec"]["nodeName"] = 42
        pods.append(p)
    server.load("pods", pods)


def graph(engine: Engine) -> dict[str, set[tuple[Any, ...]]]:
    """The stored graph by keys (ids differ between databases)."""
    queries = {
        "objects": "SELECT kind, namespace, name, uid, resource_version, node_name, fingerprint FROM objects",
        "vertices": "SELECT kind, namespace, name FROM vertices",
        "edges": "SELECT o.kind, o.namespace, o.name, f.kind, f.namespace, f.name, t.kind, t.namespace, "
        "t.name, n.name FROM edges e JOIN objects o ON o.id = e.owner_id JOIN vertices f ON f.id = e.from_id "
        "JOIN vertices t ON t.id = e.to_id LEFT JOIN vertices n ON n.id = e.node_id",
        "facts": "SELECT kind, namespace, name, facts FROM admission_facts",
        "sync": "SELECT resource, resource_version FROM sync_state",
    }
    with engine.connect() as conn:
        return {name: {tuple(r) for r in conn.execute(text(sql))} for name, sql in queries.items()}


def sync_once(store: GraphStore, api: KubeApi, config: InformerConfig) -> SyncWorker:
    worker = SyncWorker(store, api, resources=["pods"], config=config)
    with running(worker) as errors:
        wait_for(lambda: worker.initial_sync_done, timeout=60)
    assert not errors
    return worker


def spawned_children(pid: int) -> list[int]:
    """The list (row) children of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"app.sync.row_process" in cmdline:
                found.append(int(child))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, waiting to be reaped by whoever adopted it


@pytest.fixture
def server() -> Any:
    with FakeApiServer() as s:
        yield s


@pytest.fixture
def api(server: FakeApiServer, tmp_path: Path) -> Any:
    client = KubeApi.from_config(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    yield client
    client.close()


def test_the_child_path_stores_the_graph_the_thread_path_stores(
    server: FakeApiServer,
    api: KubeApi,
    store: GraphStore,
    engine: Engine,
    sqlite_template: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(server)
    with caplog.at_level(logging.INFO, logger="app.sync.informer"):
        sync_once(store, api, CHILD)
    assert any("listing the rest" in r.getMessage() for r in caplog.records), "the child was not used"
    reference = tmp_path / "thread.db"
    shutil.copyfile(sqlite_template, reference)
    thread_engine = make_engine(f"sqlite:///{reference}")
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="app.sync.informer"):
            sync_once(lease_holding_store(thread_engine), api, THREAD)
        assert not any("listing the rest" in r.getMessage() for r in caplog.records)
        expected = graph(thread_engine)
    finally:
        thread_engine.dispose()
    stored = graph(engine)
    assert len(stored["objects"]) == PODS - 1  # the malformed one is skipped on both paths
    assert len(stored["edges"]) > PODS
    assert stored == expected


def test_a_child_killed_mid_list_is_retried_and_nothing_is_half_applied(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    # A stored pod the cluster no longer has: only a completed list may remove it, with its position.
    apply_raw(store, [{"kind": "Pod", "apiVersion": "v1", **pod("ghost", secret="s-ghost")}])
    fill(server)
    server.continue_delay = 0.1
    worker = SyncWorker(store, api, resources=["pods"], config=CHILD)
    samples: list[tuple[bool, str | None]] = []
    with running(worker) as errors:
        wait_for(lambda: spawned_children(os.getpid()) and server.requests["list:pods"] >= 3, timeout=30)
        (child,) = spawned_children(os.getpid())
        os.kill(child, signal.SIGKILL)
        while not worker.initial_sync_done:
            # In this order: once the ghost is gone, the position that removed it must be there.
            ghost = reachable(engine, "n1", "secret", "default", "s-ghost")
            samples.append((ghost, store.resource_version("pods")))
        assert not errors
    assert server.requests["list:pods"] > 7  # listed again after the child died
    assert samples and all(ghost or position is not None for ghost, position in samples)
    assert samples[0] == (True, None)
    assert not reachable(engine, "n1", "secret", "default", "s-ghost")
    assert len(store.owned_keys("pod")) == PODS - 1
    assert store.resource_version("pods") == server.resource_version
    assert gone(child)


def test_an_expired_continue_token_in_the_child_relists(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    fill(server)
    server.continue_delay = 0.1
    worker = SyncWorker(store, api, resources=["pods"], config=CHILD)
    with caplog.at_level(logging.INFO, logger="app.sync.informer"), running(worker) as errors:
        wait_for(lambda: spawned_children(os.getpid()) and server.requests["list:pods"] >= 3, timeout=30)
        server.compact()  # the child's next continue token is too old: 410
        wait_for(lambda: worker.initial_sync_done, timeout=60)
    assert not errors
    assert any("re-listing" in r.getMessage() for r in caplog.records)
    assert server.requests["list:pods"] > 7
    assert len(store.owned_keys("pod")) == PODS - 1
    assert store.resource_version("pods") == server.resource_version


def test_the_child_exits_when_its_parent_is_killed(
    server: FakeApiServer, database_url: str, tmp_path: Path
) -> None:
    fill(server, 3000)  # past the child threshold at the default page size
    # The child waits for its first page far longer than the test waits for it to exit: the
    # parent's death is noticed, not the next write to the pipe.
    server.continue_delay = 60.0
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    log = (tmp_path / "sync.log").open("wb")
    proc = subprocess.Popen(
        [nodeauthz_script(), "--database-url", database_url, "sync", "--kubeconfig", str(kubeconfig)]
        + ["--resources", "pods"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Until the child waits for its first page (not merely starting up).
        wait_for(lambda: proc.poll() is not None or server.requests["list:pods"] >= 2, timeout=30)
        assert proc.poll() is None, (tmp_path / "sync.log").read_text()
        (child,) = spawned_children(proc.pid)
        proc.kill()
        proc.wait()
        wait_for(lambda: gone(child), timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
