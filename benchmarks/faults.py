"""Figures under faults: answers during a database stall, readiness across a graceful handover.

    python -m benchmarks.faults --stall-seconds 10 --database-url sqlite:////tmp/f.db \\
        --database-url postgresql://postgres@127.0.0.1:5432/faults

WARNING: every given database is emptied. The PostgreSQL stall is never done to a given server:
the stall experiment starts a server of its own (``initdb`` on a free port) and SIGSTOPs that.

- stall: ``nodeauthz serve`` on the sample cluster; 8 clients send graph checks back to back while
  the database stalls for ``--stall-seconds`` (SQLite: another process holds the WAL-index read
  locks; PostgreSQL: the server frozen with SIGSTOP). Reported: check latency p50/p99/max and how
  many answered no-opinion, and /healthz latency, during the stall.
- handover: two ``nodeauthz run`` replicas on the small cluster, API server quiet (no bookmarks);
  the writer stopped with SIGTERM; the survivor's /readyz polled every 50 ms for 45 s (longer than
  the default 30 s writer-silence allowance). Reported: total seconds unready.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import Engine, select

from app.cli.webhook_commands import load_sample_cluster, sample_review
from app.graph.database import is_sqlite, make_engine, resolve_url
from app.graph.dialects.sqlite import sqlite_path
from app.graph.schema import writer_lease
from benchmarks.apiserver_proc import ApiServerProcess
from benchmarks.raw_insert import fresh_database
from benchmarks.shapes import PRESETS
from benchmarks.sync_procs import Replica
from tests.pg_server import own_postgres
from tests.web.test_stalls import LOCK_HOLDER, serving

CLIENTS = 8
RESOURCES = "pods,nodes,persistentvolumes,volumeattachments"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure_stall(base: str, stall: float, start_stall: object) -> str:
    """Clients hammer /authorize while ``start_stall()`` (a context manager factory) holds the stall."""
    review = sample_review("node-a", "shop", "web-tls")
    latencies: list[float] = []
    refused = 0
    health: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        nonlocal refused
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                t = time.monotonic()
                status = http.post(f"{base}/authorize", json=review).json()["status"]
                with lock:
                    latencies.append(time.monotonic() - t)
                    refused += not status["allowed"]

    def prober() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                t = time.monotonic()
                http.get(f"{base}/healthz")
                health.append(time.monotonic() - t)
                time.sleep(0.1)

    with start_stall():  # type: ignore[operator]
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)] + [
            threading.Thread(target=prober)
        ]
        for t in threads:
            t.start()
        time.sleep(stall)
        stop.set()
        for t in threads:
            t.join(60)
    ms = [x * 1000 for x in latencies]
    return (
        f"checks during a {stall:.0f} s stall: {len(ms)} answered, {refused} no-opinion; "
        f"p50 {pct(ms, 0.5):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms; "
        f"/healthz p99 {pct([h * 1000 for h in health], 0.99):.1f} ms"
    )


def stall_sqlite(url: str, stall: float, work: Path) -> str:
    fresh_database(url)
    load_sample_cluster(url)
    path = sqlite_path(url)

    class Held:
        def __enter__(self) -> None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LOCK_HOLDER, path, str(stall + 2)], stdout=subprocess.PIPE, text=True
            )
            assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

        def __exit__(self, *exc: object) -> None:
            self.proc.kill()
            self.proc.wait()

    with serving(url, work / "stall-sqlite.log") as base:
        return "sqlite " + measure_stall(base, stall, Held)


def stall_postgres(stall: float, work: Path) -> str:
    with own_postgres() as server:
        with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE DATABASE nodeauthz")
        url = server.url("nodeauthz")
        load_sample_cluster(url)
        with serving(url, work / "stall-pg.log") as base:
            return "postgresql (a server of its own) " + measure_stall(base, stall, server.stalled)


def holder(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(writer_lease.c.holder)).scalar()


def handover(url: str, api: ApiServerProcess, work: Path) -> str:
    fresh_database(url)
    engine = make_engine(url)
    first = Replica(url, api.kubeconfig, RESOURCES, "first", work / "first.log")
    try:
        first.wait_ready(120)
        second = Replica(url, api.kubeconfig, RESOURCES, "second", work / "second.log")
        second.wait_ready(120)
        assert holder(engine) == "first"
        first.stop(30)
        unready = 0.0
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            t = time.monotonic()
            if not second.ready():
                unready += 0.05
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))
        taken = holder(engine)
        second.stop(30)
        return f"{url.split(':')[0]}: graceful handover (quiet API server): survivor unready {unready:.2f} s of 45 s; writer now {taken}"
    finally:
        first.stop(5)
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", action="append", required=True)
    ap.add_argument("--stall-seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        print(f"{os.cpu_count()} cores")
        for url in map(resolve_url, args.database_url):
            if is_sqlite(url):
                print(stall_sqlite(url, args.stall_seconds, work), flush=True)
        if any(not is_sqlite(resolve_url(u)) for u in args.database_url):
            print(stall_postgres(args.stall_seconds, work), flush=True)
        with ApiServerProcess(PRESETS["small"], 1, kubeconfig=work / "kubeconfig") as api:
            for url in map(resolve_url, args.database_url):
                print(handover(url, api, work), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
