"""Fill a fresh database with a generated cluster through the store's bulk path, streaming.

    python -m benchmarks.fill --database-url URL (--pods N | --preset P) [--seed S] [--batch 2000]

What ``nodeauthz load`` does for a large file, without the file: a child process
generates the cluster object by object (``benchmarks.generate``), derives each
(edges and NodeRestriction facts) and hands pages of ``--batch`` objects over a
pipe (``app.sync.row_process``); this process writes them with ``BulkLoad`` in
one fenced write transaction (all or nothing; the write-time closure rebuilt
once, at commit). Nothing holds the cluster: memory is bounded by a page, so a
million pods fit. On PostgreSQL the tables are then ANALYZEd (the shared test
server runs without autovacuum: a fresh graph would have no planner statistics).

Prints one line for the caller (``benchmarks.scale_curve``): wall seconds, CPU
seconds of both processes, peak RSS in MB (the larger of the two), objects written,
and whether ANALYZE ran.
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from app.graph.bulk_load import BulkLoad
from app.graph.bulk_rows import FactRow, PageRows, page_rows
from app.graph.database import is_sqlite, make_engine, resolve_url
from app.graph.derivation import DerivedObject, derive, owner_kind
from app.graph.migrations import upgrade
from app.k8s.admission_facts import derive_facts
from app.sync.row_process import ChildRows
from benchmarks.generate import generate
from benchmarks.shapes import PRESETS, Shape, scale_shape
from benchmarks.writer import benchmark_store

BATCH = 2_000  # objects per page, as ``nodeauthz load``


@dataclass(frozen=True)
class Filled:
    wall_s: float
    cpu_s: float  # this process and its child
    rss_mb: float  # peak resident set, the larger of the two processes
    written: int
    analyzed: bool  # PostgreSQL: ANALYZE ran after the load


def generated_pages(shape: Shape, seed: int, batch: int) -> Generator[PageRows, None, int]:
    """The producer (in the child): the cluster's page rows, facts included; returns the object count."""
    gc.disable()  # many small acyclic objects: the cyclic GC would rescan them over and over
    count = 0
    objects: list[DerivedObject] = []
    facts: list[FactRow] = []
    for item in generate(shape, seed):
        kind = owner_kind(item)
        if kind is None:
            continue
        obj = derive(item, kind)
        objects.append(obj)
        if (f := derive_facts(kind, item)) is not None:
            facts.append(((obj.kind, obj.namespace, obj.name), f))
        if len(objects) >= batch:
            count += len(objects)
            yield page_rows(objects, facts)
            objects, facts = [], []
    if objects:
        count += len(objects)
        yield page_rows(objects, facts)
    return count


def fill_here(url: str, shape: Shape, seed: int, batch: int = BATCH) -> tuple[int, bool]:
    """Migrate and fill ``url`` (empty) in this process; returns (objects written, analyzed)."""
    upgrade(url)
    engine = make_engine(url)
    try:
        store = benchmark_store(engine, "fill")
        written = 0
        # The database is fresh: no object can be stored yet, so skip the per-object look-up.
        with BulkLoad(store, assume_new=True) as bulk:
            # The child is a fresh interpreter: name the producer by its module, not as __main__'s.
            from benchmarks.fill import generated_pages as producer

            for page in ChildRows(producer, shape, seed, batch):
                written += bulk.apply_rows(page).written
        if is_sqlite(url):
            return written, False
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        return written, True
    finally:
        engine.dispose()


def fill(url: str, pods: int, seed: int, batch: int = BATCH) -> Filled:
    """Fill ``url`` with ``scale_shape(pods)`` in a subprocess (so its CPU and peak RSS are the load's alone)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.fill", "--database-url", url, "--pods", str(pods)]
        + ["--seed", str(seed), "--batch", str(batch)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.fill failed ({out.returncode}):\n{out.stderr[-3000:]}")
    cpu, rss, written, analyzed = out.stdout.split()[-4:]
    return Filled(time.perf_counter() - started, float(cpu), float(rss), int(written), analyzed == "analyzed")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fill", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="an empty (or missing SQLite) database")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--pods", type=int, help="the large preset scaled to this many pods (scale_curve's sizes)"
    )
    which.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=BATCH)
    args = ap.parse_args(argv)
    shape = PRESETS[args.preset] if args.preset else scale_shape(args.pods)
    written, analyzed = fill_here(resolve_url(args.database_url), shape, args.seed, args.batch)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    rss_mb = max(own.ru_maxrss, kids.ru_maxrss) / 1024
    print(f"{cpu:.2f} {rss_mb:.0f} {written} {'analyzed' if analyzed else 'not-analyzed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
