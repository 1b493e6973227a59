"""Running a ``run(stop)`` loop (an Informer, a SyncWorker) on a thread for the length of a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Runnable(Protocol):
    def run(self, stop: threading.Event) -> None: ...


@contextmanager
def running(loop: Runnable, *, stop_within: float = 3.0) -> Iterator[list[BaseException]]:
    """Yields the exceptions ``loop.run`` raised; on exit, stops it and asserts it stopped promptly."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.run(stop)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(timeout=stop_within)
        assert not thread.is_alive(), f"{type(loop).__name__} did not stop promptly"
