"""The writer's campaign: a thread that keeps trying to become the writer and renews while it is."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.graph.fence import Fence
from app.ha.lease import LeaseManager

__all__ = ["LeaderLoop"]

log = logging.getLogger(__name__)


POLL_INTERVAL_S = 1.0  # a candidate's look at the lease: one PK read and a try-lock


class LeaderLoop:
    """A thread that keeps trying to become the writer and keeps the lease while it is.

    As a candidate it tries to acquire about once a second (so a dead writer is
    replaced within about a second: ``app.ha.lease``); as the leader it renews
    every ``duration / 3``. ``on_elected(fence)`` runs when it wins; ``on_deposed()`` when a
    renewal is refused, when renewals have failed with errors for a whole lease
    duration (the lease has surely expired by then), and on stop. On stop it
    calls ``on_deposed`` first, so writing has stopped, then releases the lease.
    Callbacks run on the loop's thread and should return quickly.
    """

    def __init__(
        self,
        manager: LeaseManager,
        *,
        on_elected: Callable[[Fence], Any],
        on_deposed: Callable[[], Any],
        interval: float | None = None,
        poll_interval: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.manager = manager
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.interval = interval if interval is not None else manager.duration / 3  # renewals
        self.poll_interval = (
            poll_interval if poll_interval is not None else min(POLL_INTERVAL_S, self.interval)
        )
        self.stop_event = stop_event or threading.Event()
        self._fence: Fence | None = None
        self._last_renewed = 0.0
        self._thread: threading.Thread | None = None

    @property
    def fence(self) -> Fence | None:
        """The fence while this replica is the writer, else None."""
        return self._fence

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("leader loop already started")
        self._thread = threading.Thread(target=self.run, name=f"leader-{self.manager.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Signal the loop to stop and wait for it to release the lease."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The loop body; ``start`` runs it on a daemon thread."""
        try:
            while not self.stop_event.is_set():
                self.tick()
                self.stop_event.wait(self.interval if self._fence is not None else self.poll_interval)
        finally:
            fence = self._fence
            if fence is not None:
                self._depose()
                try:
                    self.manager.release(fence)
                except Exception:  # noqa: BLE001 - shutting down; the lease will expire on its own
                    log.exception("releasing lease %r failed", self.manager.name)

    def tick(self) -> None:
        """One step: acquire when not leader, renew when leader."""
        fence = self._fence
        if fence is None:
            try:
                fence = self.manager.try_acquire()
            except Exception:  # noqa: BLE001 - database trouble: try again next tick
                log.exception("acquiring lease %r failed", self.manager.name)
                return
            if fence is None:
                return
            self._fence = fence
            self._last_renewed = time.monotonic()
            log.info("elected writer: lease %r epoch %d", fence.lease, fence.epoch)
            try:
                self.on_elected(fence)
            except Exception:  # noqa: BLE001 - a writer that cannot start must not keep the lease
                log.exception("on_elected failed; giving up the lease")
                self._fence = None
                self._release_quietly(fence)
            return
        try:
            renewed = self.manager.renew(fence)
        except Exception:  # noqa: BLE001 - keep leading until the lease must have expired
            log.exception("renewing lease %r failed", self.manager.name)
            if time.monotonic() - self._last_renewed < self.manager.duration:
                return
            renewed = False
        if renewed:
            self._last_renewed = time.monotonic()
            return
        log.warning("deposed: lease %r epoch %d is no longer ours", fence.lease, fence.epoch)
        self._depose()

    def _depose(self) -> None:
        fence, self._fence = self._fence, None
        try:
            self.on_deposed()
        except Exception:  # noqa: BLE001 - the loop must keep running
            log.exception("on_deposed failed")
        if fence is not None:
            self.manager.step_down(fence)  # writing has stopped: our liveness lock means nothing now

    def _release_quietly(self, fence: Fence) -> None:
        try:
            self.manager.release(fence)
        except Exception:  # noqa: BLE001
            log.exception("releasing lease %r failed", self.manager.name)
