"""Restart to ready: ``nodeauthz serve`` on a warm database, from process start until /readyz says 200.

As ``sync_bench`` times a restarted replica: a subprocess on a free port, /readyz
polled every 10 ms. ``--require-synced none``: the database was filled by a
one-shot loader, not a live writer, so the readiness checked is the database's
and the schema's (the sync-state part adds three primary-key lookups whatever
the graph's size). The first /authorize answer is timed too. The baseline, in turn with each restart: the same
command on an empty migrated database (Python start-up and imports, no data), since on a
busy machine start-up alone moves by a second.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.shapes import Check
from benchmarks.sync_procs import Proc, free_port, review


def serve_until_ready(
    url: str, log: Path, probe: Check | None, timeout: float = 120.0
) -> tuple[float, float]:
    """(seconds to /readyz 200, ms of the first /authorize after it) for one fresh ``serve`` process."""
    port = free_port()
    proc = Proc(["--database-url", url, "serve", "--port", str(port), "--require-synced", "none"], log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        while True:
            if not proc.alive():
                raise RuntimeError(f"nodeauthz serve exited early:\n{proc.tail()}")
            if time.monotonic() - proc.started > timeout:
                raise RuntimeError(f"nodeauthz serve not ready after {timeout:.0f}s:\n{proc.tail()}")
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        ready = time.monotonic() - proc.started
        first_ms = float("nan")
        if probe is not None:
            started = time.monotonic()
            resp = client.post("/authorize", json=review(probe.node, probe.namespace, probe.name))
            first_ms = (time.monotonic() - started) * 1000
            if resp.json()["status"]["allowed"] is not probe.expected_allowed:
                raise RuntimeError(f"the restarted webhook answered {probe} wrong")
        return ready, first_ms
    finally:
        client.close()
        proc.stop()


@dataclass(frozen=True)
class Restarts:
    ready_s: float  # median over rounds
    ready_max_s: float
    first_authorize_ms: float  # median
    empty_ready_s: float  # the baseline: the same command on an empty migrated database, median


def restart_to_ready(url: str, empty_url: str, work: Path, probe: Check | None, rounds: int = 3) -> Restarts:
    """``rounds`` restarts on ``url``, each followed by one on ``empty_url`` (start-up without the data)."""
    warm, empty = [], []
    for r in range(rounds):
        warm.append(serve_until_ready(url, work / f"serve-{r}.log", probe))
        empty.append(serve_until_ready(empty_url, work / f"serve-empty-{r}.log", None)[0])
    ready = [w[0] for w in warm]
    return Restarts(
        statistics.median(ready),
        max(ready),
        statistics.median(w[1] for w in warm),
        statistics.median(empty),
    )
