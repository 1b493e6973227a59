"""One resource's list/watch loop, delivering to a sink; our own, not ``kubernetes.watch.Watch``.

(That helper retries a 410 once without backoff and fails on ERROR events
when not deserialising.) The loop: paged list, then watch from the list's
resourceVersion with bookmarks; after a clean timeout or a cut connection,
watch again from the last resourceVersion the sink accepted; on 410 (HTTP or
ERROR event) re-list; on other errors back off exponentially with jitter.
The position only advances after the sink returns, so a failed commit is
re-delivered rather than lost. The rest of a big list may be fetched and parsed
in a child process (``app.sync.list_child``): its pages reach the sink already
derived (``list_rows``), and its errors are raised here like the loop's own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from app.sync.api_client import (
    ApiError,
    KubeApi,
    ListPage,
    ResourceSpec,
    StreamEnded,
    WatchEvent,
    WatchStream,
)
from app.sync.list_child import CHILD_MIN_ITEMS, ChildList, ListChildren
from app.sync.list_pages import ListedPage
from app.sync.metrics import sync_metrics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where an informer delivers; each call returns once the data is durable (or raises)."""

    def list_started(self, resource: str) -> None: ...

    def list_page(self, resource: str, items: list[dict[str, Any]]) -> None: ...

    def list_rows(self, resource: str, page: ListedPage) -> None:
        """A page parsed and derived elsewhere (a list child): as ``list_page``, minus that work."""

    def list_finished(self, resource: str, resource_version: str) -> None: ...

    def events(self, resource: str, events: list[WatchEvent], resource_version: str) -> None:
        """ADDED/MODIFIED/DELETED events in order (bookmarks are not included, only their
        resourceVersion); ``resource_version`` is the last one seen, possibly from a bookmark."""

    def watch_established(self, resource: str, resource_version: str) -> None:
        """A watch from ``resource_version`` is open and the server did not refuse the position
        (a too-old one is refused at once, with 410): the graph is current as of now."""


@dataclass(frozen=True)
class InformerConfig:
    page_size: int = 500
    watch_timeout: tuple[int, int] = (240, 360)  # timeoutSeconds drawn from this range
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    batch_max: int = 300
    # Wait at most this long after an event for more to batch with it. 0 = take what has
    # already arrived and never wait: measured lower lag (p50 1 ms vs 6 ms at 300 events/s)
    # and higher burst throughput than 5 ms, since commits taking longer grow batches anyway.
    batch_window: float = 0.0
    poll: float = 0.2  # how often a waiting loop looks at the stop event
    # How many big lists may be parsed in child processes at once (app.sync.list_child); 0: none.
    # Two: at start-up the two biggest lists (pods, and PVs or secrets' owners) run at once, and the
    # writer then does little more than write (measured, benchmarks/README.md).
    list_children: int = 2
    list_child_min_items: int = CHILD_MIN_ITEMS  # ... when at least this many items follow the first page


class _Relist(Exception):
    """The position is gone (410): list again."""


class Informer:
    def __init__(
        self,
        api: KubeApi,
        spec: ResourceSpec,
        sink: Sink,
        *,
        resource_version: str | None = None,
        config: InformerConfig | None = None,
        fatal: tuple[type[BaseException], ...] = (),
        children: ListChildren | None = None,
    ) -> None:
        """``resource_version``: a stored position to watch from (no list first); ``fatal``:
        exceptions (from the sink) that end the loop instead of being retried; ``children``: where
        the rest of a big list may be parsed (None: always in this thread)."""
        self.api = api
        self.children = children
        self.spec = spec
        self.sink = sink
        self.config = config or InformerConfig()
        self.fatal = fatal
        self.resource_version = resource_version or None
        self.lists_completed = 0
        self._failures = 0
        self._stream: WatchStream | None = None
        self._lock = threading.Lock()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        name = self.spec.name
        restarts = sync_metrics().watch_restarts
        while not stop.is_set():
            watching = self.resource_version is not None
            try:
                if not watching:
                    self._list(stop)
                else:
                    self._watch(stop)
                    if not stop.is_set():
                        restarts.labels(name, "timeout").inc()
            except _Relist:
                restarts.labels(name, "gone").inc()
                log.info("%s: resourceVersion %s is too old; re-listing", name, self.resource_version)
                self.resource_version = None
            except self.fatal:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive API and database hiccups
                if stop.is_set():
                    break
                if watching:
                    restarts.labels(name, "error").inc()
                self._failures += 1
                if isinstance(exc, ApiError) and exc.expired and self._failures == 1:
                    log.info("%s: %s; re-listing", name, exc)  # an expired continue token
                    self.resource_version = None
                    continue
                delay = self._backoff()
                log.warning("%s: %s: %s; retrying in %.2fs", name, type(exc).__name__, exc, delay)
                stop.wait(delay)

    def _backoff(self) -> float:
        """Exponential, capped, jittered to 50-100 % of the step so replicas do not retry in lockstep."""
        base: float = min(self.config.backoff_max, self.config.backoff_initial * 2.0 ** (self._failures - 1))
        return base * random.uniform(0.5, 1.0)

    def _list(self, stop: threading.Event) -> None:
        self.sink.list_started(self.spec.name)
        page = self.api.fetch_page(self.spec, limit=self.config.page_size)
        resource_version: str | None = page.resource_version
        if self.children is not None and self.children.wanted(self.api, page):
            with self.children.slot() as free:
                if free:
                    resource_version = self._list_in_child(page, stop)
                else:
                    resource_version = self._list_here(page, stop)
        else:
            resource_version = self._list_here(page, stop)
        if resource_version is None:  # stopped
            return
        self.sink.list_finished(self.spec.name, resource_version)
        self.resource_version = resource_version
        self.lists_completed += 1
        sync_metrics().relists.labels(self.spec.name).inc()
        self._failures = 0

    def _list_here(self, page: ListPage, stop: threading.Event) -> str | None:
        """This page and the following ones, fetched and parsed in this thread; the list's position."""
        while True:
            self.sink.list_page(self.spec.name, page.items)
            if not page.continue_token:
                return page.resource_version
            if stop.is_set():
                return None
            page = self.api.fetch_page(
                self.spec, limit=self.config.page_size, continue_token=page.continue_token
            )

    def _list_in_child(self, first: ListPage, stop: threading.Event) -> str | None:
        """The first page here while a child starts up and fetches the rest; the list's position."""
        child = ChildList(self.api, self.spec, self.config.page_size, first.continue_token, stop)
        child.start()
        try:
            log.info(
                "%s: listing the rest (%s items) in process %s", self.spec.name, first.remaining, child.pid
            )
            self.sink.list_page(self.spec.name, first.items)
            for listed in child:
                self.sink.list_rows(self.spec.name, listed)
        finally:
            child.close()
        return child.resource_version

    def _watch(self, stop: threading.Event) -> None:
        assert self.resource_version is not None
        low, high = self.config.watch_timeout
        timeout = random.randint(low, max(low, high))
        opened = time.monotonic()
        delivered = False
        try:
            stream = self.api.watch(
                self.spec, resource_version=self.resource_version, timeout_seconds=timeout
            )
        except ApiError as exc:
            if exc.expired:
                raise _Relist() from exc
            raise
        with self._lock:
            self._stream = stream
        established = False
        try:
            while not stop.is_set():
                batch, rv = self._next_batch(stream, stop)
                if not established:
                    established = True
                    if rv is None:  # quiet: no event, no error within a poll of opening
                        self.sink.watch_established(self.spec.name, self.resource_version)
                if rv is None:
                    continue
                self.sink.events(self.spec.name, batch, rv)
                self.resource_version = rv
                self._failures = 0
                delivered = True
        except StreamEnded:
            # A clean end right after opening, with nothing delivered, is a misbehaving
            # server: count it as a failure so the loop backs off instead of spinning.
            if not delivered and time.monotonic() - opened < 1.0:
                raise RuntimeError("watch ended immediately") from None
        except ApiError as exc:
            if exc.expired:
                raise _Relist() from exc
            raise
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def _next_batch(self, stream: WatchStream, stop: threading.Event) -> tuple[list[WatchEvent], str | None]:
        """Up to batch_max events, collected for at most batch_window after the first one.

        Returns the events (bookmarks dropped) and the last resourceVersion seen (None if nothing came).
        If the stream ends or fails after some events arrived, those are returned first.
        """
        first = stream.get(self.config.poll)
        if first is None:
            return [], None
        batch: list[WatchEvent] = []
        rv = self._take(first, batch, None)
        deadline = first.arrived + self.config.batch_window
        while len(batch) < self.config.batch_max and not stop.is_set():
            try:
                event = stream.get(deadline - time.monotonic())
            except Exception:
                break  # deliver what arrived; the stream raises the same again on the next get
            if event is None:
                break
            rv = self._take(event, batch, rv)
        return batch, rv or self.resource_version

    @staticmethod
    def _take(event: WatchEvent, batch: list[WatchEvent], rv: str | None) -> str | None:
        if event.type != "BOOKMARK":
            batch.append(event)
        return event.resource_version or rv

    def interrupt(self) -> None:
        """Close the open watch (from another thread) so a stop takes effect at once."""
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
