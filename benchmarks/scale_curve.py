"""Check cost across cluster sizes: is it flat from a thousand pods to upstream's 150,000?

    python -m benchmarks.scale_curve --database-url URL [--sizes 600,3000] [--repeat 500] [--keep]

For each size (pods; nodes = pods / 30, tenant namespaces scaled like the large
preset, so 150,000 pods *is* the large preset) a cluster is generated and applied
through the graph store into a fresh database: SQLite gets a new file per size
next to the URL's file (``scale.db`` -> ``scale-3000.db``); for PostgreSQL the URL
is an admin connection and a database ``nodeauthz_scale_<size>`` is dropped and
created per size. Then every sample check and a primary-key lookup of the same
object are timed, interleaved round by round so noise hits both alike, on the raw
driver the webhook uses. One table: rows are topologies, columns sizes.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.graph.database import is_sqlite, resolve_url
from app.graph.reach import PK_LOOKUP_SQL, REACH_SQL, reach_params
from benchmarks.check_cost import Query, load_shape, p, postgres_runner, psycopg_connect, sqlite_runner
from benchmarks.shapes import PRESETS, Check, Shape, sample_checks

DEFAULT_SIZES = (600, 3000)
PODS_PER_NODE = 30
PK = "pk lookup"
# Rows in this order; any other topology sample_checks adds follows them.
ORDER = ("unique secret", "hot configmap", "pv secret 3-hop")


def scale_shape(pods: int) -> Shape:
    """The large preset scaled to ``pods``: same per-node and per-namespace density."""
    large = PRESETS["large"]
    nodes = max(1, pods // PODS_PER_NODE)
    namespaces = max(1, round(large.namespaces * nodes / large.nodes))
    return replace(large, nodes=nodes, namespaces=namespaces)


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
        for suffix in ("", "-wal", "-shm"):
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
    line("load seconds", lambda r: f"{r['load_s']:.1f}")
    line("load pods/s", lambda r: f"{r['pods'] / r['load_s']:.0f}")
    line("wrong answers", lambda r: str(r["wrong"]))


def measure_size(
    admin_url: str, pods: int, seed: int, repeat: int, per_topology: int, prefix: str
) -> dict[str, Any]:
    url = database_for(admin_url, pods, prefix)
    shape = scale_shape(pods)
    create(admin_url, url)
    load_s = load_shape(url, shape, seed)
    run, close = sqlite_runner(url) if is_sqlite(url) else postgres_runner(url)
    try:
        samples, wrong = time_checks(run, sample_checks(shape, seed, per_topology), repeat)
    finally:
        close()
    pk = statistics.median(samples[PK])
    worst = max(statistics.median(v) / pk for k, v in samples.items() if k != PK)
    print(
        f"{pods} pods ({shape.nodes} nodes, {shape.namespaces} namespaces): loaded in {load_s:.1f} s, "
        f"worst {worst:.2f}x PK, {wrong} wrong -> {url.split('@')[-1]}",
        flush=True,
    )
    return {
        "url": url,
        "pods": shape.pods,
        "load_s": load_s,
        "samples": samples,
        "wrong": wrong,
        "worst": worst,
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
        help="pods per size, comma-separated (default 600,3000; the full curve: 1000,10000,100000,150000)",
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
    for n in args.sizes:
        try:
            results[n] = measure_size(admin_url, n, args.seed, args.repeat, args.per_topology, args.pg_prefix)
        finally:
            if not args.keep:
                drop(admin_url, database_for(admin_url, n, args.pg_prefix))
    report(engine, args.sizes, results, args.repeat)
    return 1 if any(r["wrong"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
