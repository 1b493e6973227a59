"""Cost across cluster sizes: is a check flat from a thousand pods to a million, and what does size cost?

    python -m benchmarks.scale_curve --database-url URL [--sizes 600,3000] [--repeat 500] [--keep]

For each size (pods; nodes = pods / 30, tenant namespaces scaled like the large
preset, so 150,000 pods *is* the large preset and 1,000,000 the million preset) a
cluster is generated and written into a fresh database by ``benchmarks.fill``
(a subprocess: the store's bulk path in pages, one transaction, generation in a
second process; PostgreSQL is ANALYZEd after). SQLite gets a new file per size
next to the URL's file (``scale.db`` -> ``scale-3000.db``); for PostgreSQL the URL
is an admin connection and a database ``nodeauthz_scale_<size>`` is dropped and
created per size. Then every sample check and a primary-key lookup of the same
object are timed, interleaved round by round so noise hits both alike, on the raw
driver the webhook uses; and ``nodeauthz serve`` is restarted on the warm
database three times, timed to /readyz 200 (``benchmarks.restart``). One table:
rows are topologies, columns sizes; below it the load's time, CPU and peak RSS,
the database's size (SQLite: file + WAL; PostgreSQL: pg_database_size) and bytes
per pod above the empty schema, and restart-to-ready (median / max).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.graph.database import is_sqlite, resolve_url
from app.graph.migrations import upgrade
from app.graph.reach import PK_LOOKUP_SQL, REACH_SQL, reach_params
from benchmarks.check_cost import Query, p, postgres_runner, psycopg_connect, sqlite_runner
from benchmarks.fill import fill
from benchmarks.restart import restart_to_ready
from benchmarks.shapes import PODS_PER_NODE, Check, sample_checks, scale_shape

DEFAULT_SIZES = (600, 3000)
PK = "pk lookup"
# Rows in this order; any other topology sample_checks adds follows them.
ORDER = ("unique secret", "hot configmap", "pv secret 3-hop")


def database_for(url: str, pods: int, prefix: str = "nodeauthz_scale") -> str:
    """The URL of size ``pods``'s database (derived from the given file, or admin URL and ``prefix``)."""
    u = make_url(url)
    if is_sqlite(url):
        path = Path(u.database or "scale.db")
        return u.set(
            database=str(path.with_name(f"{path.stem}-{pods}{path.suffix or '.db'}"))
        ).render_as_string(hide_password=False)
    return u.set(database=f"{prefix}_{pods}").render_as_string(hide_password=False)


def drop(admin_url: str, url: str) -> None:
    """Remove size ``url``'s database (SQLite file with its WAL, or the PostgreSQL database)."""
    if is_sqlite(url):
        path = make_url(url).database or ""
        for suffix in ("", "-wal", "-shm", "-migrate.lock", "-writer.lock"):
            Path(path + suffix).unlink(missing_ok=True)
        return
    from psycopg import sql

    name = make_url(url).database or ""
    with psycopg_connect(admin_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(admin_url: str, url: str) -> None:
    drop(admin_url, url)
    if is_sqlite(url):
        return
    from psycopg import sql

    with psycopg_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(make_url(url).database or "")))


def group(c: Check) -> str:
    return f"{c.topology}|{'yes' if c.expected_allowed else 'no'}"


def time_checks(run: Query, checks: Sequence[Check], repeat: int) -> tuple[dict[str, list[float]], int]:
    """Samples (us) per topology|allowed group and for the PK lookup; and the count of wrong answers."""
    queries: list[tuple[str, str, dict[str, Any]]] = []
    wrong = 0
    for c in checks:
        params = reach_params(c.node, c.kind, c.namespace, c.name)
        wrong += (run(REACH_SQL, params)[0] == 2) != c.expected_allowed
        queries += [(group(c), REACH_SQL, params), (PK, PK_LOOKUP_SQL, params)]
    samples: dict[str, list[float]] = {label: [] for label, _, _ in queries}
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(repeat):  # round by round: a noisy moment hits every query, not one topology
            for label, sql, params in queries:
                t = clock()
                run(sql, params)
                samples[label].append((clock() - t) / 1000)
    finally:
        gc.enable()
    return samples, wrong


def _rows(samples: dict[str, list[float]]) -> list[str]:
    def key(label: str) -> tuple[int, str, int]:
        topology, allowed = label.split("|")
        rank = ORDER.index(topology) if topology in ORDER else len(ORDER)
        return (rank, topology, allowed != "yes")

    return sorted((k for k in samples if k != PK), key=key) + [PK]


def p99_ratio(samples: dict[str, list[float]]) -> float:
    """p99(hot configmap) / p99(unique secret), allowed and not pooled."""

    def pooled(topology: str) -> list[float]:
        return [x for k, v in samples.items() if k.split("|")[0] == topology for x in v]

    hot, unique = pooled("hot configmap"), pooled("unique secret")
    return p(hot, 0.99) / p(unique, 0.99) if hot and unique else float("nan")


def report(engine: str, sizes: Sequence[int], results: dict[int, dict[str, Any]], repeat: int) -> None:
    width = 24
    print(
        f"\nscale curve, {engine}, {os.cpu_count()} cores, {repeat} rounds; "
        "cell: median / p99 us (median / PK median)"
    )
    print(f"{'topology':<22} {'allowed':<7} " + "".join(f"{f'{n} pods':>{width}}" for n in sizes))
    labels = {k: v for n in sizes for k, v in results[n]["samples"].items()}  # rows any size has
    for label in _rows(labels):
        topology, _, allowed = label.partition("|")
        cells = []
        for n in sizes:
            s = results[n]["samples"].get(label)
            if not s:
                cells.append(f"{'-':>{width}}")
                continue
            pk = statistics.median(results[n]["samples"][PK])
            med = statistics.median(s)
            cells.append(f"{f'{med:.1f} / {p(s, 0.99):.1f} ({med / pk:.2f}x)':>{width}}")
        print(f"{topology:<22} {allowed or '':<7} " + "".join(cells))

    def line(title: str, fmt: Callable[[dict[str, Any]], str]) -> None:
        print(f"{title:<30}" + "".join(f"{fmt(results[n]):>{width}}" for n in sizes))

    line("worst median x PK (<= 2)", lambda r: f"{r['worst']:.2f}x")
    line("p99 hot / p99 unique (<= 1.5)", lambda r: f"{p99_ratio(r['samples']):.2f}")
    line("wrong answers", lambda r: str(r["wrong"]))
    line("load s (bulk path)", lambda r: f"{r['load'].wall_s:.1f}")
    line("load CPU s (2 processes)", lambda r: f"{r['load'].cpu_s:.1f}")
    line("load pods/s", lambda r: f"{r['pods'] / r['load'].wall_s:.0f}")
    line("writer peak RSS MB", lambda r: f"{r['load'].rss_mb:.0f}")
    line("database MB", lambda r: f"{r['bytes'] / 1e6:.0f}")
    line("bytes per pod", lambda r: f"{r['per_pod']:.0f}")
    line("restart to ready s (<= 2)", lambda r: f"{r['ready'].ready_s:.2f} / {r['ready'].ready_max_s:.2f}")
    line("  same, empty database", lambda r: f"{r['ready'].empty_ready_s:.2f}")
    line("first /authorize ms", lambda r: f"{r['ready'].first_authorize_ms:.1f}")
    if any(results[n]["load"].analyzed for n in sizes):
        print("(PostgreSQL: ANALYZE ran after each load; the load time includes it)")


def database_bytes(url: str) -> int:
    """The database's size on disk: SQLite's file with its WAL, PostgreSQL's pg_database_size."""
    if is_sqlite(url):
        path = make_url(url).database or ""
        return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    with psycopg_connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0])


def measure_size(
    admin_url: str,
    pods: int,
    seed: int,
    repeat: int,
    per_topology: int,
    prefix: str,
    work: Path,
    empty_url: str,
) -> dict[str, Any]:
    url = database_for(admin_url, pods, prefix)
    shape = scale_shape(pods)
    create(admin_url, url)
    upgrade(url)
    empty = database_bytes(url)
    filled = fill(url, pods, seed)
    size = database_bytes(url)
    checks = sample_checks(shape, seed, per_topology)
    run, close = sqlite_runner(url) if is_sqlite(url) else postgres_runner(url)
    try:
        samples, wrong = time_checks(run, checks, repeat)
    finally:
        close()
    probe = next((c for c in checks if c.kind == "secret" and c.expected_allowed), None)
    restarts = restart_to_ready(url, empty_url, work, probe)
    pk = statistics.median(samples[PK])
    worst = max(statistics.median(v) / pk for k, v in samples.items() if k != PK)
    print(
        f"{shape.pods} pods ({shape.nodes} nodes, {shape.namespaces} namespaces): loaded in {filled.wall_s:.1f} s"
        f"{' + ANALYZE' if filled.analyzed else ''} (peak RSS {filled.rss_mb:.0f} MB), {size / 1e6:.0f} MB, "
        f"worst {worst:.2f}x PK, {wrong} wrong, ready in {restarts.ready_s:.2f} s "
        f"(empty: {restarts.empty_ready_s:.2f} s) -> {url.split('@')[-1]}",
        flush=True,
    )
    return {
        "url": url,
        "pods": shape.pods,
        "load": filled,
        "bytes": size,
        "per_pod": (size - empty) / shape.pods,
        "samples": samples,
        "wrong": wrong,
        "worst": worst,
        "ready": restarts,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.scale_curve", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--database-url", required=True, help="SQLite file (a sibling per size) or PostgreSQL admin URL"
    )
    ap.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(DEFAULT_SIZES),
        help="pods per size, comma-separated (default 600,3000; the full curve: 1000,10000,100000,150000,1000000)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=500, help="timed rounds over all checks per size")
    ap.add_argument("--per-topology", type=int, default=3, help="sample checks per topology")
    ap.add_argument("--pg-prefix", default="nodeauthz_scale", help="PostgreSQL database names: PREFIX_<size>")
    ap.add_argument("--keep", action="store_true", help="keep each size's database (default: drop it)")
    args = ap.parse_args(argv)
    if any(n < PODS_PER_NODE for n in args.sizes):
        ap.error(f"each size must be at least {PODS_PER_NODE} pods")
    admin_url = resolve_url(args.database_url)
    engine = "sqlite" if is_sqlite(admin_url) else "postgresql"
    results: dict[int, dict[str, Any]] = {}
    empty_url = database_for(admin_url, 0, args.pg_prefix)  # restart-to-ready's baseline
    create(admin_url, empty_url)
    upgrade(empty_url)
    with tempfile.TemporaryDirectory(prefix="scale-curve-") as work:
        try:
            for n in args.sizes:
                try:
                    results[n] = measure_size(
                        admin_url,
                        n,
                        args.seed,
                        args.repeat,
                        args.per_topology,
                        args.pg_prefix,
                        Path(work),
                        empty_url,
                    )
                finally:
                    if not args.keep:
                        drop(admin_url, database_for(admin_url, n, args.pg_prefix))
        finally:
            drop(admin_url, empty_url)
    report(engine, args.sizes, results, args.repeat)
    return 1 if any(r["wrong"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
