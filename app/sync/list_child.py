"""The rest of a big list fetched, parsed and derived in a child process, written by the caller.

Parsing JSON and deriving edges cost about as much as the bulk write itself
and would otherwise share the writer's core. Once the first page of a list
says more than ``CHILD_MIN_ITEMS`` items follow, the informer hands its
continue token to a child: the child pages on with its own client (configured
from the same kubeconfig), turns each page into a ``ListedPage`` and sends it
as plain tuples over a pipe (``app.sync.row_process``), while the informer's
thread writes the pages already received. The child holds no database
connection (the fence stays with the writer), dies with its parent, and an
error in it (an API error, 410 included, or its death) is raised in the
informer's thread as if the thread had met it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

from app.sync.api_client import KubeApi, ListPage, ResourceSpec
from app.sync.list_pages import ListedPage, listed_page
from app.sync.row_process import ChildRows

# Below this many items after the first page, listing in the thread is cheaper than starting a
# child: its start-up (a fresh interpreter and its imports) costs ~0.2 s of CPU, what parsing and
# deriving ~2,000 pods costs (~0.13 ms each, list + derive without a database in sync_bench).
CHILD_MIN_ITEMS = 2_000


def child_pages(
    source: tuple[str | None, str | None], spec: ResourceSpec, page_size: int, token: str
) -> Generator[tuple[Any, ...], None, str]:
    """The producer, in the child: each following page's wire form; returns the list's resourceVersion."""
    api = KubeApi.from_config(*source)
    try:
        resource_version = ""
        while token:
            page = api.fetch_page(spec, limit=page_size, continue_token=token)
            yield listed_page(spec.name, spec.kind, page.items).wire()
            token, resource_version = page.continue_token, page.resource_version
        return resource_version
    finally:
        api.close()


class ListChildren:
    """How many list children may run at once; 0 lists everything in threads."""

    def __init__(self, limit: int = 2, *, min_items: int = CHILD_MIN_ITEMS) -> None:
        self.limit = limit
        self.min_items = min_items
        self._slots = threading.BoundedSemaphore(max(limit, 1))

    def wanted(self, api: KubeApi, first: ListPage) -> bool:
        """Whether the rest of a list that began with ``first`` is worth a child."""
        if self.limit <= 0 or not first.continue_token or api.source is None:
            return False
        return first.remaining is None or first.remaining >= self.min_items

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """True (and a slot held until the block ends) when a child may start now."""
        got = self.limit > 0 and self._slots.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._slots.release()


class ChildList:
    """``for page in ChildList(...)``: the rest of a list as ``ListedPage``; ``resource_version`` after."""

    def __init__(
        self, api: KubeApi, spec: ResourceSpec, page_size: int, token: str, stop: threading.Event
    ) -> None:
        assert api.source is not None
        self._rows = ChildRows(child_pages, api.source, spec, page_size, token, stop=stop)
        self.resource_version: str | None = None  # None until the list completed

    def start(self) -> None:
        self._rows.start()

    @property
    def pid(self) -> int | None:
        return self._rows.pid

    def close(self) -> None:
        self._rows.close()

    def __iter__(self) -> Iterator[ListedPage]:
        for wire in self._rows:
            yield ListedPage.from_wire(wire)
        if not self._rows.stopped:
            self.resource_version = self._rows.result
