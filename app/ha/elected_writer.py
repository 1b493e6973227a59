"""The writer process of a replica: campaigns for the lease and, while it holds it, runs the informers.

Deposed (or fenced out), it stops writing and campaigns again. It runs in its
own process (``app.replica``) so graph writes never compete with the request
path for the GIL.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from app.graph.database import make_engine
from app.graph.fence import Fence, FenceSource, LeaseLost
from app.graph.store import GraphStore
from app.ha.leader_loop import LeaderLoop
from app.ha.lease import LeaseManager
from app.ha.metrics import leader_metrics
from app.sync.api_client import KubeApi
from app.sync.informer import InformerConfig
from app.sync.worker import SyncWorker
from app.telemetry.logs import configure_logging

LOG = logging.getLogger("nodeauthz.replica")
FRESHNESS_LOG_INTERVAL_S = float(
    os.environ.get("NODEAUTHZ_FRESHNESS_LOG_INTERVAL") or 60.0
)  # benchmarks shorten it
# How soon ``run`` notices a stop asked for by a signal handler (which may not take a lock: see request_stop).
STOP_POLL_S = 0.2


@dataclass(frozen=True)
class WriterOptions:
    database_url: str
    holder: str
    kubeconfig: str | None = None
    context: str | None = None
    resources: tuple[str, ...] = ()
    lease_duration: float = 15.0
    list_children: int = 2  # processes that may parse big lists (app.sync.list_child)
    log_level: str = "INFO"
    log_format: str = "text"


class ElectedWriter:
    """The child's state: a SyncWorker thread that exists only while this replica holds the lease."""

    def __init__(self, options: WriterOptions) -> None:
        self.options = options
        self.engine = make_engine(options.database_url)
        self.store = GraphStore(self.engine, fence=self._term_fence(None))  # no term yet: writes nothing
        self.api = KubeApi.from_config(options.kubeconfig, options.context)
        self.manager = LeaseManager(self.engine, holder=options.holder, duration=options.lease_duration)
        self.stop = threading.Event()
        self.loop = LeaderLoop(
            self.manager, on_elected=self._elected, on_deposed=self._deposed, stop_event=self.stop
        )
        self._worker: SyncWorker | None = None
        self._worker_stop = threading.Event()
        self._stop_signal: str | None = None  # set by request_stop, read by run
        self._thread: threading.Thread | None = None

    def _elected(self, fence: Fence) -> None:
        LOG.info("elected writer %s (epoch %d): syncing", fence.holder, fence.epoch)
        leader_metrics().is_leader.set(1)
        leader_metrics().epoch.set(fence.epoch)
        self._worker_stop = threading.Event()
        resources = self.options.resources or None
        # This term's fence only, never the loop's current one: once the term ends (deposed, or
        # taken over while this process was paused) the worker's writes fail with LeaseLost, even
        # if this replica has been elected again meanwhile.
        self.store = GraphStore(self.engine, fence=self._term_fence(fence))
        config = InformerConfig(list_children=self.options.list_children)
        self._worker = SyncWorker(self.store, self.api, resources=resources, config=config)
        self._thread = threading.Thread(target=self._run_worker, name="sync-worker", daemon=True)
        self._thread.start()

    def _term_fence(self, term: Fence | None) -> FenceSource:
        def fence() -> Fence:
            if term is None or self.loop.fence != term:
                raise LeaseLost(f"{self.options.holder} is not the writer of this term")
            return term

        return fence

    def _run_worker(self) -> None:
        assert self._worker is not None
        try:
            self._worker.run(self._worker_stop)
        except LeaseLost as exc:
            LOG.warning("fenced out: %s; campaigning again", exc)
        except Exception:  # noqa: BLE001 - a crashed worker must not keep the lease
            LOG.exception("sync worker failed; giving up the lease (a replica takes over, maybe this one)")
            fence = self.loop.fence
            if fence is not None:
                try:
                    self.manager.release(fence)  # the next renewal fails, so the loop deposes us
                except Exception:  # noqa: BLE001 - it expires on its own
                    LOG.exception("releasing the lease failed")

    def _deposed(self) -> None:
        LOG.info("no longer the writer: stopping the informers")
        leader_metrics().is_leader.set(0)
        self._worker_stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Ask ``run`` to stop; the SIGTERM/SIGINT handler. It takes no lock: ``stop.set()`` here
        deadlocked the main thread when a second SIGTERM (the parent-death signal, then the parent
        watchdog's) landed while the first handler held the event's lock, leaving a headless writer
        on the lease."""
        self._stop_signal = signal.Signals(signum).name

    def run(self) -> None:
        leader_metrics().is_leader.set(0)
        self.loop.start()
        next_log = time.monotonic() + FRESHNESS_LOG_INTERVAL_S
        while self._stop_signal is None and not self.stop.wait(STOP_POLL_S):
            if time.monotonic() >= next_log:
                next_log = time.monotonic() + FRESHNESS_LOG_INTERVAL_S
                self._log_freshness()
        if self._stop_signal is not None:
            LOG.info("received %s; stopping the writer", self._stop_signal)
        self.stop.set()
        self.loop.stop()  # deposes (stops the informers), then releases the lease
        self.manager.close()
        self.api.close()
        self.engine.dispose()

    def _log_freshness(self) -> None:
        worker = self._worker
        if worker is not None and self._thread is not None:
            fresh = worker.freshness()
            if fresh.p50 is not None and fresh.p99 is not None:
                LOG.info(
                    "freshness: event arrival -> commit over %d events: p50 %.1f ms, p99 %.1f ms",
                    fresh.samples,
                    fresh.p50 * 1000,
                    fresh.p99 * 1000,
                )


def writer_main(options: WriterOptions) -> None:
    """Entry point of the writer child process."""
    configure_logging(options.log_level, options.log_format)
    writer = ElectedWriter(options)
    signal.signal(signal.SIGTERM, writer.request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    writer.run()
