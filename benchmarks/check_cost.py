"""Check cost per topology versus one primary-key lookup, on the same database in the same run.

    python -m benchmarks.check_cost --database-url URL --preset large [--load] [--repeat 2000]

``--load`` first generates the preset's cluster and applies it through the
graph store (timed: this is the ingest path). The checks come from
``benchmarks.shapes.sample_checks``, whose answers are known; a wrong answer
is reported. Both the check and the baseline run through the raw driver the
webhook uses on the request path (sqlite3; psycopg with prepared statements).
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from app.graph.database import is_sqlite, make_engine, resolve_url
from app.graph.derivation import derive
from app.graph.dialects.sqlite import sqlite_path, tune_connection
from app.graph.migrations import upgrade
from app.graph.reach import PK_LOOKUP_SQL, REACH_SQL, reach_params, render
from benchmarks.generate import generate
from benchmarks.shapes import PRESETS, Check, Shape, sample_checks
from benchmarks.writer import benchmark_store

Query = Callable[[str, dict[str, Any]], Any]


def load(url: str, preset: str, seed: int, batch: int = 5_000) -> float:
    """Generate and apply the preset through GraphStore; returns seconds."""
    return load_shape(url, PRESETS[preset], seed, batch)


def load_shape(url: str, shape: Shape, seed: int, batch: int = 5_000) -> float:
    """Generate and apply a cluster of ``shape`` through GraphStore (the ingest path); returns seconds."""
    upgrade(url)
    engine = make_engine(url)
    store = benchmark_store(engine, "check-cost")
    started = time.perf_counter()
    gc.disable()
    pending = []
    for obj in generate(shape, seed):
        pending.append(derive(obj))
        if len(pending) >= batch:
            store.apply(pending)
            pending = []
    store.apply(pending)
    gc.enable()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    engine.dispose()
    return time.perf_counter() - started


def _cached_renderer(style: str) -> Callable[[str], tuple[str, tuple[str, ...]]]:
    cache: dict[str, tuple[str, tuple[str, ...]]] = {}
    return lambda sql: cache.get(sql) or cache.setdefault(sql, render(sql, style))


def sqlite_runner(url: str) -> tuple[Query, Callable[[], None]]:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
    tune_connection(conn)
    rendered = _cached_renderer("qmark")

    def run(sql: str, params: dict[str, Any]) -> Any:
        text, order = rendered(sql)
        return conn.execute(text, [params[p] for p in order]).fetchone()

    return run, conn.close


def psycopg_connect(url: str) -> Any:
    """A raw autocommit psycopg connection for a SQLAlchemy-style PostgreSQL URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(
        host=u.host,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.database,
        autocommit=True,
    )


def postgres_runner(url: str) -> tuple[Query, Callable[[], None]]:
    conn = psycopg_connect(url)
    rendered = _cached_renderer("format")

    def run(sql: str, params: dict[str, Any]) -> Any:
        text, order = rendered(sql)
        return conn.execute(text, [params[p] for p in order], prepare=True).fetchone()

    return run, conn.close


def measure(run: Query, sql: str, params: dict[str, Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        run(sql, params)
        samples.append((time.perf_counter_ns() - t) / 1000)
    return samples


def p(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--load", action="store_true", help="generate and apply the preset first")
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args(argv)
    url = resolve_url(args.database_url)
    engine_name = "sqlite" if is_sqlite(url) else "postgresql"
    if args.load:
        seconds = load(url, args.preset, args.seed)
        print(f"loaded preset {args.preset} into {engine_name} in {seconds:.1f} s")
    run, close = sqlite_runner(url) if is_sqlite(url) else postgres_runner(url)
    checks: list[Check] = sample_checks(PRESETS[args.preset], args.seed)
    print(
        f"check cost, {engine_name}, preset {args.preset}, {os.cpu_count()} cores, {args.repeat} runs each (us)"
    )
    print(
        f"{'topology':<22} {'allowed':<7} {'ok':<3} {'median':>8} {'p99':>8} {'pk med':>8} {'pk p99':>8} {'x pk':>6}"
    )
    worst = 0.0
    wrong = 0
    for c in checks:
        params = reach_params(c.node, c.kind, c.namespace, c.name)
        row = run(REACH_SQL, params)
        ok = (row[0] == 2) == c.expected_allowed
        wrong += not ok
        reach = measure(run, REACH_SQL, params, args.repeat)
        pk = measure(run, PK_LOOKUP_SQL, params, args.repeat)
        ratio = statistics.median(reach) / statistics.median(pk)
        worst = max(worst, ratio)
        print(
            f"{c.topology:<22} {str(c.expected_allowed):<7} {'yes' if ok else 'NO':<3} "
            f"{statistics.median(reach):8.1f} {p(reach, 0.99):8.1f} {statistics.median(pk):8.1f} "
            f"{p(pk, 0.99):8.1f} {ratio:6.2f}"
        )
    close()
    print(f"worst median ratio to a PK lookup: {worst:.2f}x (target <= 2x); wrong answers: {wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
