"""Prometheus metrics across processes: the multiprocess directory, and the metrics several layers share.

prometheus_client decides when it is first imported whether metric values live in this process's
memory or in per-process files under ``$PROMETHEUS_MULTIPROC_DIR`` (which is how ``--workers N`` and
the writer child of ``nodeauthz run`` are added up on every scrape). So the serving commands call
``prepare_multiprocess_dir`` before any process is started, and every metrics module builds its
metrics on first use (a ``functools.cache``d function) instead of at import: importing the command
line never imports prometheus_client.

Gauges say how processes combine (``multiprocess_mode``): a value only one process knows (the
writer's) is ``mostrecent``; counters and histograms are summed.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "nodeauthz"
# Request and check latencies: 100 us (a SQLite check) to 5 s (the API server's webhook timeout).
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

LOG = logging.getLogger("nodeauthz.metrics")
_prepared: list[str] = []  # this process's directory, once prepared


def prepare_multiprocess_dir() -> str:
    """``$PROMETHEUS_MULTIPROC_DIR`` emptied of a previous run's files, or a new temporary one; returns it.

    Must run before this process first imports prometheus_client; child processes inherit it.
    Idempotent within a process (``run`` prepares it before starting its writer, then serves).
    """
    if _prepared:
        return _prepared[0]
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in Path(path).glob("*.db"):  # values of processes from an earlier run
            stale.unlink()
    else:
        path = tempfile.mkdtemp(prefix="nodeauthz-metrics-")
        os.environ[MULTIPROC_ENV] = path
        atexit.register(shutil.rmtree, path, True)
    if "prometheus_client" in sys.modules and not multiprocess_active():
        LOG.warning(
            "prometheus_client was imported before %s was set: this process's metrics stay local",
            MULTIPROC_ENV,
        )
    _prepared.append(path)
    return path


def multiprocess_active() -> bool:
    """Whether this process records its metrics in the multiprocess directory."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


@functools.cache
def database_errors() -> Counter:
    """Failed database operations, by what was being done (recorded by the webhook and the writer)."""
    from prometheus_client import Counter

    return Counter(
        "database_errors",
        "Database operations that failed, by operation",
        ["operation"],
        namespace=NAMESPACE,
    )
