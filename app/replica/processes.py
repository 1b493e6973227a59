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
If this process dies without a word (SIGKILL, the OOM killer), the child stops
the same way by itself (``app.replica.writer_child``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from app.ha.elected_writer import WriterOptions
from app.replica.writer_child import writer_child_main
from app.telemetry.prometheus import prepare_multiprocess_dir
from app.web.server import run_server
from app.web.settings import Settings

LOG = logging.getLogger("nodeauthz.replica")


def run_replica(settings: Settings, options: WriterOptions) -> int:
    """Serve the webhook in this process and the elected writer in a child; returns the exit code."""
    prepare_multiprocess_dir()  # before the writer starts: its metrics go where the webhook reads them
    ctx = multiprocessing.get_context("spawn")
    # The child stops by itself when this process dies, even by SIGKILL (app.replica.writer_child).
    child = ctx.Process(target=writer_child_main, args=(options, os.getpid()), name="nodeauthz-writer")
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
        run_server(settings)
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
