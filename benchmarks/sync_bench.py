"""Initial sync, writer memory, restart-to-ready and event-to-visible lag, per database.

    python -m benchmarks.sync_bench --database-url URL [--database-url URL ...] [--preset small|large]
        [--nodes N] [--pvs-per-pod 1] [--rate 200] [--duration 20] [--sample-every 10]

WARNING: every given database is emptied (SQLite: the file is replaced) and left migrated but empty.

The fake API server runs in its own process with the preset's pods and one PV
per pod. Per database:

1. ``nodeauthz sync`` (a subprocess, fresh database) until the pods and
   persistentvolumes ``sync_state`` rows exist; its peak RSS (VmHWM). Twice,
   on a fresh database each time: every list parsed in the writer's thread
   (``--list-children 0``), then big lists parsed in a child process
   (``--list-children 2``, the default; the children's own CPU and peak RSS too).
   Beside it: paging through the same lists with the same client and no
   database ("list only", once per run) and inserting the synced rows into a
   fresh database with the driver's fastest plain path ("raw insert", last).
2. ``nodeauthz run`` (replica A) on the warm database: start to /readyz 200,
   then the first /authorize answer.
3. A second replica B (a reader: A holds the lease). Pods are created at a
   steady rate; for every ``--sample-every``-th one, B's /authorize is polled
   until it allows the pod's secret: create call -> allowed on the other replica.
   Plus the writer's own event-arrival -> commit lag from its freshness log.

Exits non-zero only when something is wrong (a count mismatch, a wrong or
missing answer, a process that died), never for a missed target.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from app.graph.database import is_sqlite, resolve_url
from app.graph.derivation import derive
from app.k8s.watched_resources import CANDIDATES
from app.sync.api_client import KubeApi, ResourceSpec
from benchmarks.apiserver_proc import ApiServerProcess, cpu_seconds
from benchmarks.raw_insert import GraphRows, fresh_database, raw_insert, read_rows
from benchmarks.shapes import PRESETS, Shape
from benchmarks.sync_procs import (
    Replica,
    allowed,
    children_of,
    peak_rss_mb,
    reaped_children_cpu,
    review,
    start_sync,
)

RESOURCES = ("pods", "persistentvolumes")
LAG_NAMESPACE = "bench-lag"


class BenchError(Exception):
    """Something is wrong (not merely slow): the run exits non-zero."""


@dataclass
class SyncRun:
    sync_s: float = 0.0
    startup_s: float = 0.0
    server_cpu_s: float = 0.0
    writer_cpu_s: float = 0.0
    child_cpu_s: float = 0.0  # list children, reaped by the writer
    rss_mb: float = 0.0
    child_rss_mb: float = 0.0  # the largest list child's peak


@dataclass
class Result:
    engine: str
    thread: SyncRun = field(default_factory=SyncRun)  # --list-children 0
    child: SyncRun = field(default_factory=SyncRun)  # --list-children N (2 by default)
    raw_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    ready_s: float = 0.0
    first_authorize_ms: float = 0.0
    lags_ms: list[float] = field(default_factory=list)
    missed: int = 0
    rate: float = 0.0
    writer: tuple[int, float, float] | None = None


def list_only(kubeconfig: Path) -> tuple[float, float]:
    """Seconds to page through pods and PVs with the sync's client and page size: plain, then with derive."""
    from app.sync.informer import InformerConfig

    api, page_size = KubeApi.from_config(str(kubeconfig)), InformerConfig().page_size
    timings = []
    try:
        for derive_too in (False, True):
            started = time.perf_counter()
            for name in RESOURCES:
                group, versions, kind = CANDIDATES[name]
                spec, token = ResourceSpec(name, group, versions[0], kind), ""
                while True:
                    page = api.fetch_page(spec, limit=page_size, continue_token=token)
                    if derive_too:
                        for item in page.items:
                            derive(item, kind)
                    if not (token := page.continue_token):
                        break
            timings.append(time.perf_counter() - started)
    finally:
        api.close()
    return timings[0], timings[1]


def synced(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # Both kinds keep NodeRestriction's facts, whose "listed" mark commits just after the
            # sync position: stopping the writer in between would make the restart re-list.
            found = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM sync_state WHERE resource IN ('pods', 'persistentvolumes'))"
                    " + (SELECT count(*) FROM admission_fact_lists"
                    " WHERE resource IN ('pods', 'persistentvolumes'))"
                )
            ).scalar()
            return found == 2 * len(RESOURCES)
    finally:
        engine.dispose()


def initial_sync(
    url: str, api: ApiServerProcess, work: Path, engine: str, list_children: int, timeout: float
) -> SyncRun:
    fresh_database(url)
    run = SyncRun()
    cpu_before = api.cpu_seconds()
    log = work / f"sync-{engine}-{list_children}.log"
    proc = start_sync(url, api.kubeconfig, ",".join(RESOURCES), log, list_children)

    def sample_rss() -> None:
        run.rss_mb = peak_rss_mb(proc.pid) or run.rss_mb
        for child in children_of(proc.pid):
            run.child_rss_mb = max(run.child_rss_mb, peak_rss_mb(child) or 0.0)

    try:
        while not synced(url):
            if not proc.alive():
                raise BenchError(f"nodeauthz sync exited early:\n{proc.tail()}")
            if time.monotonic() - proc.started > timeout:
                raise BenchError(f"nodeauthz sync not done after {timeout:.0f}s:\n{proc.tail()}")
            sample_rss()
            time.sleep(0.02)
        run.sync_s = time.monotonic() - proc.started
        run.startup_s = proc.first_log(": watching ") or 0.0
        run.server_cpu_s = api.cpu_seconds() - cpu_before
        run.writer_cpu_s = cpu_seconds(proc.pid)
        run.child_cpu_s = reaped_children_cpu(proc.pid)
        sample_rss()
    finally:
        proc.stop()
    return run


def stream_lag(
    api: ApiServerProcess, reader: Replica, args: argparse.Namespace, tag: str, result: Result
) -> None:
    """Create pods at ``args.rate``/s; time sampled ones from the create call to allowed on ``reader``."""
    total = int(args.rate * args.duration)
    local = threading.local()

    def wait_visible(created: float, body: dict[str, object]) -> float | None:
        client = getattr(local, "client", None) or httpx.Client(base_url=reader.client.base_url, timeout=5)
        local.client = client
        while time.monotonic() - created < args.visible_timeout:
            if allowed(client, body):
                return (time.monotonic() - created) * 1000
            time.sleep(args.poll_interval)
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        started = time.monotonic()
        for i in range(total):
            delay = started + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name, node = f"lag-{tag}-{i}", f"lag-node-{i % 10}"
            pod = {
                "metadata": {"namespace": LAG_NAMESPACE, "name": name},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "c", "image": "bench"}],
                    "volumes": [{"name": "tls", "secret": {"secretName": f"{name}-tls"}}],
                },
                "status": {"phase": "Pending"},
            }
            created = time.monotonic()
            api.create("pods", pod)
            if i % args.sample_every == 0:
                futures.append(pool.submit(wait_visible, created, review(node, LAG_NAMESPACE, f"{name}-tls")))
        result.rate = total / (time.monotonic() - started)
        lags = [f.result() for f in futures]
    result.lags_ms = sorted(lag for lag in lags if lag is not None)
    result.missed = sum(lag is None for lag in lags)


def replicas(
    url: str, api: ApiServerProcess, rows: GraphRows, work: Path, args: argparse.Namespace, result: Result
) -> None:
    resources = ",".join(RESOURCES)
    log_every = 1.0  # the writer's freshness log interval (seconds)
    writer = Replica(
        url, api.kubeconfig, resources, "bench-a", work / f"run-a-{result.engine}.log", log_every
    )
    reader: Replica | None = None
    try:
        result.ready_s = writer.wait_ready(args.ready_timeout)
        if rows.probe is not None:
            node, namespace, secret = rows.probe
            started = time.monotonic()
            ok = allowed(writer.client, review(node, namespace, secret))
            result.first_authorize_ms = (time.monotonic() - started) * 1000
            if not ok:
                raise BenchError(f"the restarted replica denied {node} secret {namespace}/{secret}")
        reader = Replica(url, api.kubeconfig, resources, "bench-b", work / f"run-b-{result.engine}.log")
        reader.wait_ready(args.ready_timeout)
        stream_lag(api, reader, args, result.engine, result)
        time.sleep(log_every * 1.5)  # let the writer log its freshness once more
        result.writer = writer.freshness()
        if not writer.alive() or not reader.alive():
            raise BenchError("a replica died during the event stream")
    finally:
        for proc in (reader, writer):
            if proc is not None:
                proc.stop()
    for i in range(int(args.rate * args.duration)):  # the next database lists the same cluster
        api.delete("pods", f"lag-{result.engine}-{i}", LAG_NAMESPACE)


def bench_database(url: str, api: ApiServerProcess, work: Path, args: argparse.Namespace) -> Result:
    result = Result("sqlite" if is_sqlite(url) else "postgresql")
    print(f"[{result.engine}] initial sync, lists parsed in the writer ...", flush=True)
    result.thread = initial_sync(url, api, work, result.engine, 0, args.sync_timeout)
    print(f"[{result.engine}] initial sync, big lists parsed in a child ...", flush=True)
    result.child = initial_sync(url, api, work, result.engine, args.list_children, args.sync_timeout)
    rows = read_rows(url)
    result.rows = {t: rows.count(t) for t in rows.tables}
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = {k: n for k, n in conn.execute(text("SELECT kind, count(*) FROM objects GROUP BY kind"))}
    engine.dispose()
    expected = {"pod": api.counts["pods"], "pv": api.counts["persistentvolumes"]}
    if stored != expected:
        raise BenchError(f"[{result.engine}] stored objects {stored}, served {expected}")
    print(f"[{result.engine}] restart to ready, event lag ...", flush=True)
    replicas(url, api, rows, work, args, result)
    print(f"[{result.engine}] raw insert ...", flush=True)
    fresh_database(url)
    result.raw_s = raw_insert(url, rows)
    fresh_database(url)  # leave no benchmark data behind
    return result


def quantile(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def report(
    shape_name: str,
    api: ApiServerProcess,
    lists: tuple[float, float],
    results: list[Result],
    args: argparse.Namespace,
) -> None:
    pods, pvs = api.counts["pods"], api.counts["persistentvolumes"]
    print(
        f"\nsync benchmark: {shape_name}: {pods} pods + {pvs} PVs; {os.cpu_count()} cores; "
        f"stream {args.rate:g} pods/s for {args.duration:g} s, every {args.sample_every}th sampled"
    )
    cols = [r.engine for r in results]
    rows: list[tuple[str, list[str], str]] = [
        ("raw bulk insert, same rows (s)", [f"{r.raw_s:.2f}" for r in results], ""),
        ("list only, no database (s)", [f"{lists[0]:.2f}" for _ in results], ""),
        ("list + derive, no database (s)", [f"{lists[1]:.2f}" for _ in results], ""),
        ("rows: vertices/objects/edges", ["/".join(str(n) for n in r.rows.values()) for r in results], ""),
    ]
    for label, mode in (("lists parsed in the writer", "thread"), ("big lists in children", "child")):
        runs = [getattr(r, mode) for r in results]
        rows += [
            (f"initial sync, {label} (s)", [f"{x.sync_s:.2f}" for x in runs], ""),
            ("  of which start-up to first list (s)", [f"{x.startup_s:.2f}" for x in runs], ""),
            (
                "  sync / raw",
                [f"{x.sync_s / r.raw_s:.1f}x" for x, r in zip(runs, results, strict=True)],
                "<= 3x",
            ),
            (
                "  (sync - start-up) / raw",
                [f"{(x.sync_s - x.startup_s) / r.raw_s:.1f}x" for x, r in zip(runs, results, strict=True)],
                "",
            ),
            (
                "  nodeauthz sync CPU: writer / child (s)",
                [f"{x.writer_cpu_s:.2f}/{x.child_cpu_s:.2f}" for x in runs],
                "",
            ),
            ("  fake API server CPU during sync (s)", [f"{x.server_cpu_s:.2f}" for x in runs], ""),
            (
                "  peak RSS: writer / child (MB)",
                [f"{x.rss_mb:.0f}/{x.child_rss_mb:.0f}" for x in runs],
                "<= 300",
            ),
        ]
    rows += [
        ("restart to /readyz 200 (s)", [f"{r.ready_s:.2f}" for r in results], "<= 2"),
        ("first /authorize after ready (ms)", [f"{r.first_authorize_ms:.1f}" for r in results], ""),
        ("stream rate achieved (pods/s)", [f"{r.rate:.0f}" for r in results], ""),
        ("create -> visible on reader p50 (ms)", [f"{quantile(r.lags_ms, 0.5):.1f}" for r in results], ""),
        (
            "create -> visible on reader p99 (ms)",
            [f"{quantile(r.lags_ms, 0.99):.1f}" for r in results],
            "<= 100",
        ),
        ("  samples / never visible", [f"{len(r.lags_ms)}/{r.missed}" for r in results], ""),
        (
            "writer arrival -> commit p50/p99 (ms)",
            [f"{r.writer[1]:.1f}/{r.writer[2]:.1f}" if r.writer else "n/a" for r in results],
            "",
        ),
    ]
    width = max(len(v) for _, values, _ in rows for v in [*values, *cols]) + 3
    print(f"{'':<40}" + "".join(f"{c:>{width}}" for c in cols) + "  target")
    for label, values, target in rows:
        print(f"{label:<40}" + "".join(f"{v:>{width}}" for v in values) + f"  {target}")


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Shape]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sync_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", action="append", required=True, help="repeatable; each is emptied")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pvs-per-pod", type=int, default=1)
    ap.add_argument("--rate", type=float, default=200.0, help="pod creations per second in the stream")
    ap.add_argument("--duration", type=float, default=20.0, help="stream seconds")
    ap.add_argument("--sample-every", type=int, default=10, help="time every Nth created pod")
    ap.add_argument("--poll-interval", type=float, default=0.002, help="seconds between /authorize polls")
    ap.add_argument("--visible-timeout", type=float, default=10.0, help="a sample not visible by then fails")
    ap.add_argument("--sync-timeout", type=float, default=3600.0)
    ap.add_argument("--list-children", type=int, default=2, help="for the second sync (the first uses 0)")
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    ap.add_argument("--workdir", default=None, help="keep logs here (default a temporary directory)")
    for f in fields(Shape):  # like benchmarks.generate: --nodes 500
        kind = float if isinstance(f.default, float) else int
        ap.add_argument("--" + f.name.replace("_", "-"), type=kind, default=None, dest=f.name)
    args = ap.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(Shape) if getattr(args, f.name) is not None}
    return args, replace(PRESETS[args.preset], **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args, shape = parse_args(argv)
    shape_name = args.preset + "".join(
        f" --{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k in {f.name for f in fields(Shape)} and v is not None
    )
    urls = [resolve_url(u) for u in args.database_url]
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"generating {shape_name} in the fake API server process ...", flush=True)
        with ApiServerProcess(
            shape, args.seed, kubeconfig=work / "kubeconfig", pvs_per_pod=args.pvs_per_pod
        ) as api:
            print(
                f"loaded {api.counts} in {api.load_seconds:.1f} s; listing without a database ...", flush=True
            )
            lists = list_only(api.kubeconfig)
            results = []
            try:
                for url in urls:
                    results.append(bench_database(url, api, work, args))
            except BenchError as exc:
                print(f"FAILED: {exc}")
                return 1
            report(shape_name, api, lists, results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
