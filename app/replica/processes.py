"""``nodeauthz run``: one deployment replica — the webhook plus a sync worker that writes only as leader.

Two processes, so graph writes (JSON parsing, edge derivation, SQL) never
compete with the request path for the GIL:

- the parent serves the webhook (uvicorn) and answers ``/readyz`` from the
  shared database: ready once every required resource has a sync position
  written by the current, live writer (a restarted reader is ready at once);
- the child takes part in leader election through the ``writer_lease`` row
  and, while it holds the lease, runs the informers with every write fenced by
  the lease epoch. Deposed (or fenced out), it stops writing and campaigns again.

SIGTERM: uvicorn finishes in-flight requests, then the child is told to stop;
it stops its informers and releases the lease so a peer takes over at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.web.settings import Settings

LOG = logging.getLogger("nodeauthz.replica")

# Resources every cluster serves; optional ones (resourceslices, podcertificaterequests) do not gate readiness.
CORE_RESOURCES = ("pods", "nodes", "persistentvolumes", "volumeattachments")
FRESHNESS_LOG_INTERVAL_S = float(os.environ.get("NODEAUTHZ_FRESHNESS_LOG_INTERVAL") or 60.0)  # benchmarks shorten it


@dataclass(frozen=True)
class WriterOptions:
    database_url: str
    holder: str
    kubeconfig: str | None = None
    context: str | None = None
    resources: tuple[str, ...] = ()
    lease_duration: float = 15.0
    log_level: str = "INFO"


class ElectedWriter:
    """The child's state: a SyncWorker thread that exists only while this replica holds the lease."""

    def __init__(self, options: WriterOptions) -> None:
        from app.graph.database import make_engine
        from app.graph.store import GraphStore
        from app.ha.lease import LeaderLoop, LeaseManager
        from app.sync.api_client import KubeApi

        self.options = options
        self.engine = make_engine(options.database_url)
        self.store = GraphStore(self.engine, writer=options.holder)
        self.api = KubeApi.from_config(options.kubeconfig, options.context)
        self.manager = LeaseManager(self.engine, holder=options.holder, duration=options.lease_duration)
        self.stop = threading.Event()
        self.loop = LeaderLoop(
            self.manager, on_elected=self._elected, on_deposed=self._deposed, stop_event=self.stop
        )
        self._worker: Any = None
        self._worker_stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _elected(self, fence: Any) -> None:
        from app.sync.worker import SyncWorker

        LOG.info("elected writer %s (epoch %d): syncing", fence.holder, fence.epoch)
        # Another writer may have removed vertices since we last wrote: forget cached ids.
        self.store.forget_cached_ids()
        self._worker_stop = threading.Event()
        resources = self.options.resources or None
        self._worker = SyncWorker(self.store, self.api, resources=resources, fence=lambda: self.loop.fence)
        self._thread = threading.Thread(target=self._run_worker, name="sync-worker", daemon=True)
        self._thread.start()

    def _run_worker(self) -> None:
        from app.graph.store import LeaseLost

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
        self._worker_stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def run(self) -> None:
        self.loop.start()
        while not self.stop.wait(FRESHNESS_LOG_INTERVAL_S):
            worker = self._worker
            if worker is not None and self._thread is not None:
                fresh = worker.freshness()
                if fresh.samples:
                    LOG.info(
                        "freshness: event arrival -> commit over %d events: p50 %.1f ms, p99 %.1f ms",
                        fresh.samples, fresh.p50 * 1000, fresh.p99 * 1000,
                    )
        self.loop.stop()  # deposes (stops the informers), then releases the lease
        self.api.close()
        self.engine.dispose()


def writer_main(options: WriterOptions) -> None:
    """Entry point of the writer child process."""
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"
    )
    writer = ElectedWriter(options)
    signal.signal(signal.SIGTERM, lambda *_: writer.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    writer.run()


def run_replica(settings: Settings, options: WriterOptions, *, workers: int = 1) -> int:
    """Serve the webhook in this process and the elected writer in a child; returns the exit code."""
    from app.cli.webhook_commands import run_server

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=writer_main, args=(options,), name="nodeauthz-writer")
    child.start()
    LOG.info("writer process %d started (holder %s)", child.pid, options.holder)

    def terminated(signum: int, _frame: Any) -> None:
        # uvicorn drains in-flight requests, then re-raises the signal it caught: end here, cleanly.
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, terminated)
    stopping = threading.Event()
    writer_died = threading.Event()

    def watch_writer() -> None:
        # A replica whose writer died (bad kubeconfig, a bug) must not serve on silently without
        # one: stop gracefully and exit non-zero so the kubelet restarts the whole replica.
        child.join()
        if not stopping.is_set():
            LOG.error("writer process exited with code %s; stopping this replica", child.exitcode)
            writer_died.set()
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_writer, name="writer-watch", daemon=True).start()
    try:
        run_server(settings, workers=workers)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        stopping.set()
        if child.is_alive():
            child.terminate()  # SIGTERM: stop informers, release the lease
        child.join(timeout=options.lease_duration + 30)
        if child.is_alive():
            LOG.error("writer process did not stop in time; killing it")
            child.kill()
            child.join()
        signal.signal(signal.SIGTERM, previous)
    return 1 if writer_died.is_set() else 0


def required_resources(requested: Sequence[str]) -> tuple[str, ...]:
    """What readiness waits for: the core resources among those this replica syncs."""
    wanted = set(requested) if requested else set(CORE_RESOURCES)
    return tuple(r for r in CORE_RESOURCES if r in wanted)
