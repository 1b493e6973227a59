"""The list/watch loop against a fake API server speaking the real protocol (no database)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.sync.api_client import KubeApi, ResourceSpec, WatchEvent
from app.sync.informer import Informer, InformerConfig
from tests.fake_apiserver import FakeApiServer
from tests.threads import running

FAST = InformerConfig(page_size=2, watch_timeout=(5, 5), backoff_initial=0.05, backoff_max=0.2, poll=0.05)
PODS = ResourceSpec("pods", "", "v1", "pod")


def pod(name: str, node: str = "n1") -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name}, "spec": {"nodeName": node}}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.on_page: Callable[[], None] | None = None
        self.fail_events: list[BaseException] = []

    def list_started(self, resource: str) -> None:
        with self.lock:
            self.calls.append(("list_started", None))

    def list_page(self, resource: str, items: list[dict[str, Any]]) -> None:
        if self.on_page is not None:
            self.on_page()
        with self.lock:
            self.calls.append(("list_page", [i["metadata"]["name"] for i in items]))

    def list_finished(self, resource: str, resource_version: str) -> None:
        with self.lock:
            self.calls.append(("list_finished", resource_version))

    def events(self, resource: str, events: list[WatchEvent], resource_version: str) -> None:
        if self.fail_events:
            raise self.fail_events.pop()
        with self.lock:
            self.calls.append(
                ("events", ([(e.type, e.object["metadata"]["name"]) for e in events], resource_version))
            )

    def watch_established(self, resource: str, resource_version: str) -> None:
        with self.lock:
            self.calls.append(("watch_established", resource_version))

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return [arg for call, arg in self.calls if call == name]

    def delivered(self) -> list[tuple[str, str]]:
        return [e for batch, _ in self.of("events") for e in batch]

    def last_rv(self) -> str | None:
        events = self.of("events")
        return events[-1][1] if events else None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, KubeApi]]:
    with FakeApiServer() as server:
        api = KubeApi.from_config(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        yield server, api
        api.close()


def test_paged_list_then_watch_delivers_in_order(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    for i in range(5):
        server.create("pods", pod(f"p{i}"))
    sink = RecordingSink()
    with running(Informer(api, PODS, sink, config=FAST)):
        wait_for(lambda: sink.of("list_finished"))
        assert sink.of("list_page") == [["p0", "p1"], ["p2", "p3"], ["p4"]]
        assert sink.of("list_finished") == [server.resource_version]
        wait_for(lambda: server.watch_count("pods") == 1)
        server.create("pods", pod("new"))
        server.update("pods", pod("new", node="n2"))
        server.delete("pods", "p0", "default")
        wait_for(lambda: len(sink.delivered()) == 3)
        assert sink.delivered() == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "p0")]
        assert sink.last_rv() == server.resource_version
    assert server.requests["list:pods"] == 3


def test_cut_connection_and_timeout_resume_without_relist(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    sink = RecordingSink()
    informer = Informer(
        api, PODS, sink, config=InformerConfig(watch_timeout=(2, 2), backoff_initial=0.05, poll=0.05)
    )
    with running(informer):
        wait_for(lambda: server.watch_count("pods") == 1)
        server.create("pods", pod("a"))
        wait_for(lambda: sink.delivered() == [("ADDED", "a")])
        server.cut_watches()
        server.create("pods", pod("b"))  # happens while no watch is open
        wait_for(lambda: len(sink.delivered()) == 2)
        watches = server.requests["watch:pods"]
        wait_for(lambda: server.requests["watch:pods"] > watches, timeout=5)  # a clean server timeout
        server.create("pods", pod("c"))
        wait_for(lambda: len(sink.delivered()) == 3)
    assert sink.delivered() == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]  # nothing lost, nothing twice
    assert server.requests["list:pods"] == 1
    assert informer.lists_completed == 1


def test_compacted_history_gives_410_and_a_relist(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    server.create("pods", pod("a"))
    sink = RecordingSink()
    informer = Informer(api, PODS, sink, config=FAST)
    with running(informer):
        wait_for(lambda: server.watch_count("pods") == 1)
        server.delete("pods", "a", "default")
        server.create("nodes", {"metadata": {"name": "n1"}})  # moves the position past the pods' last event
        server.compact()
        server.cut_watches()
        wait_for(lambda: informer.lists_completed == 2)
    assert sink.of("list_started") == [None, None]
    assert sink.of("list_page")[-1] == []
    assert server.requests["list:pods"] == 2


def test_expired_continue_token_restarts_the_list(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    for i in range(3):
        server.create("pods", pod(f"p{i}"))
    sink = RecordingSink()
    pages: list[int] = []

    def compact_once() -> None:
        pages.append(1)
        if len(pages) == 1:
            server.compact()

    sink.on_page = compact_once
    with running(Informer(api, PODS, sink, config=FAST)):
        wait_for(lambda: sink.of("list_finished"))
    assert [c for c, _ in sink.calls[:5]] == [
        "list_started",
        "list_page",
        "list_started",
        "list_page",
        "list_page",
    ]
    assert sink.of("list_page")[1:] == [["p0", "p1"], ["p2"]]


def test_stored_position_watches_without_listing(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    server.create("pods", pod("old"))
    position = server.resource_version
    server.create("pods", pod("missed"))
    sink = RecordingSink()
    with running(Informer(api, PODS, sink, resource_version=position, config=FAST)):
        wait_for(lambda: sink.delivered())
    assert sink.delivered() == [("ADDED", "missed")]
    assert server.requests["list:pods"] == 0


def test_bookmarks_advance_the_position(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    sink = RecordingSink()
    with running(Informer(api, PODS, sink, config=FAST)):
        wait_for(lambda: server.watch_count("pods") == 1)
        server.create("nodes", {"metadata": {"name": "n1"}})
        server.bookmark()
        wait_for(lambda: sink.last_rv() == server.resource_version)
    assert sink.delivered() == []


def test_failed_commit_is_redelivered_and_fatal_errors_end_the_loop(
    cluster: tuple[FakeApiServer, KubeApi],
) -> None:
    server, api = cluster
    sink = RecordingSink()
    sink.fail_events.append(RuntimeError("database went away"))
    with running(Informer(api, PODS, sink, config=FAST, fatal=(KeyError,))) as errors:
        wait_for(lambda: server.watch_count("pods") == 1)
        server.create("pods", pod("a"))
        wait_for(lambda: sink.delivered() == [("ADDED", "a")])
        sink.fail_events.append(KeyError("lease lost"))
        server.create("pods", pod("b"))
        wait_for(lambda: errors)
    assert isinstance(errors[0], KeyError)
    assert sink.delivered() == [("ADDED", "a")]


def test_unreachable_server_is_retried_and_stop_is_prompt(tmp_path: Path) -> None:
    server = FakeApiServer().start()
    api = KubeApi.from_config(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    server.stop()
    informer = Informer(
        api, PODS, RecordingSink(), config=InformerConfig(backoff_initial=0.05, backoff_max=0.1)
    )
    with running(informer):
        wait_for(lambda: server.requests["list:pods"] == 0 and informer._failures >= 3)
    api.close()


def test_a_quiet_watch_reports_itself_established_once(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    """An idle resource gets no event for minutes: the sink must hear the position is good anyway."""
    server, api = cluster
    server.create("pods", pod("p0"))
    position = server.resource_version
    sink = RecordingSink()
    with running(Informer(api, PODS, sink, resource_version=position, config=FAST)):
        wait_for(lambda: sink.of("watch_established"))
        time.sleep(6 * FAST.poll)
    assert sink.of("watch_established") == [position]  # once per watch, not once per poll
    assert sink.of("list_started") == [] and sink.of("events") == []


def test_a_refused_position_is_never_reported_established(cluster: tuple[FakeApiServer, KubeApi]) -> None:
    server, api = cluster
    server.create("pods", pod("p0"))
    position = server.resource_version
    server.create("pods", pod("p1"))
    server.compact()
    sink = RecordingSink()
    with running(Informer(api, PODS, sink, resource_version=position, config=FAST)):
        wait_for(lambda: sink.of("list_finished") and sink.of("watch_established"))
    assert position not in sink.of("watch_established")
    assert sink.of("watch_established")[0] == sink.of("list_finished")[0]
