"""A big initial list keeps the PV-secret closure by one rebuild at its end, not page by page.

Page by page, each page's walks reached the namespace's shared CSI stage secret and re-walked
every PV under it, so the initial sync grew quadratically with the cluster. Past SUSPEND_ABOVE
objects, a list into an empty kind stops the upkeep (the state row goes, so readers walk: slower,
never wrong) and the list's last transaction rebuilds every row. What a user sees: right answers
all along, and afterwards a closure equal to a rebuild, kept by the writer's term.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from app.graph.closure import kept_by_locked, rebuild_closure_locked
from app.graph.reach import has_path
from app.graph.schema import reach_closure
from app.graph.store import GraphStore
from app.sync.api_client import KubeApi
from app.sync.worker import SyncWorker
from tests.builders import pod, pv
from tests.fake_apiserver import FakeApiServer
from tests.sync.test_worker import FAST, api, wait_for
from tests.threads import running

__all__ = ["api"]  # the fixture, shared with test_worker

VOLUMES = 240
NODES = 7
CONFIG = replace(FAST, page_size=20, list_children=0)


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as s:
        s.load(
            "persistentvolumes",
            [
                pv(
                    f"v{i}",
                    ("shop", f"c{i}"),
                    csi_secrets={
                        "nodeStageSecretRef": ("shop", "stage"),
                        "nodePublishSecretRef": ("shop", f"x{i}"),
                    },
                )
                for i in range(VOLUMES)
            ],
        )
        s.load("pods", [pod(f"p{i}", "shop", f"n{i % NODES}", pvcs=(f"c{i}",)) for i in range(VOLUMES)])
        yield s


def _rows(engine: Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(select(reach_closure.c.source_id, reach_closure.c.node_id))}


def _rebuilt(engine: Engine, store: GraphStore) -> set[tuple[Any, ...]]:
    """What a rebuild from the stored edges gives, in a transaction that is rolled back."""
    with engine.connect() as conn:
        conn.begin()
        rebuild_closure_locked(conn, store.fence())
        rows = {tuple(r) for r in conn.execute(select(reach_closure.c.source_id, reach_closure.c.node_id))}
        conn.rollback()
    return rows


def _allowed(engine: Engine, node: str, secret: str) -> bool:
    with engine.connect() as conn:
        return has_path(conn, node, "secret", "shop", secret).verdict()


def _sync_watching(worker: SyncWorker, look: Callable[[], None]) -> None:
    """Run the worker until its initial sync is done, calling ``look`` every 10 ms meanwhile."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            look()
            stop.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with running(worker) as errors:
            wait_for(lambda: worker.initial_sync_done, timeout=60)
    finally:
        stop.set()
        watcher.join()
    assert not errors


def test_a_big_initial_list_rebuilds_the_closure_once_and_answers_right_meanwhile(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.sync.worker.SUSPEND_ABOVE", 60)
    server.continue_delay = 0.03  # a list long enough to be looked at half-way
    worker = SyncWorker(store, api, resources=["persistentvolumes", "pods"], config=CONFIG)
    suspended_answers: list[tuple[bool, bool]] = []  # (node 0 may read x0, node 1 may read x0)

    def look() -> None:
        with engine.connect() as conn:
            kept = kept_by_locked(conn)
        if kept is None and _allowed(engine, "n0", "x0"):  # p0 and v0 stored, upkeep suspended
            suspended_answers.append((True, _allowed(engine, "n1", "x0")))

    _sync_watching(worker, look)
    assert suspended_answers, "the upkeep was never suspended (or nothing was readable meanwhile)"
    assert all(answer == (True, False) for answer in suspended_answers)  # walked, and right

    fence = store.fence()
    with engine.connect() as conn:
        assert kept_by_locked(conn) == (fence.lease, fence.holder, fence.epoch)
    assert _rows(engine) == _rebuilt(engine, store)
    assert all(_allowed(engine, f"n{n}", "stage") for n in range(NODES))
    assert _allowed(engine, "n3", "x3") and not _allowed(engine, "n4", "x3")


def test_a_small_list_keeps_the_closure_page_by_page(
    server: FakeApiServer, api: KubeApi, store: GraphStore, engine: Engine
) -> None:
    """Below SUSPEND_ABOVE nothing changes for readers: the closure is kept throughout."""
    worker = SyncWorker(store, api, resources=["persistentvolumes", "pods"], config=CONFIG)
    unkept: list[int] = []

    def look() -> None:
        with engine.connect() as conn:
            if _rows(engine) and kept_by_locked(conn) is None:
                unkept.append(1)

    _sync_watching(worker, look)
    assert not unkept
    assert _rows(engine) == _rebuilt(engine, store)
