"""``nodeauthz load`` of a generated cluster file: time, CPU and peak RSS, streaming versus whole-file.

    python -m benchmarks.load_bench [--preset large] [--database-url URL] [--rounds 1] [--file F]

WARNING: the given database is emptied (SQLite: the file is replaced) before every round.

Each way of loading runs in its own process on a fresh database, in turn:

- ``whole``: the previous release's load (the baseline): the file parsed whole with orjson,
  every object and its NodeRestriction facts derived, then the facts (``FactWriter``) and
  ``GraphStore.apply`` in one transaction each;
- ``stream``: what ``nodeauthz load`` does for small files: items parsed one at a time
  (ijson), derived and written in bounded batches through the bulk path, one transaction;
- ``stream+child``: the same with parsing and deriving in a second process (large files).

Peak RSS is the larger of the process's and its child's (``ru_maxrss``); CPU is both.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from app.graph.database import make_engine, resolve_url
from app.graph.fence import fixed_fence
from app.graph.store import GraphStore
from app.ha.lease_record import unique_holder
from app.ha.one_shot_writer import hold_lease
from benchmarks.raw_insert import fresh_database

MODES = ("whole", "stream", "stream+child")


def run_mode(mode: str, url: str, path: str) -> int:
    """In a child process of the benchmark: load ``path`` one way; returns objects written."""
    engine = make_engine(url)
    try:
        with hold_lease(engine, unique_holder("load-bench")) as fence:
            store = GraphStore(engine, fence=fixed_fence(fence))
            if mode == "whole":
                import orjson

                from app.graph.admission_facts import FactWriter
                from app.graph.derivation import derive, owner_kind
                from app.k8s.admission_facts import derive_facts

                doc = orjson.loads(Path(path).read_bytes())
                kinds = [(i, k) for i in doc["items"] if (k := owner_kind(i)) is not None]
                objects = [derive(i, k) for i, k in kinds]
                facts = [
                    (o.key, f)
                    for o, (i, k) in zip(objects, kinds, strict=True)
                    if (f := derive_facts(k, i)) is not None
                ]
                FactWriter(engine, fence=store.fence).write(facts)
                return store.apply(objects).written
            from app.graph.bulk_load import BulkLoad
            from app.sync.files import FilePages

            written = 0
            child_bytes = 0 if mode == "stream+child" else 1 << 62
            with FilePages(path, child_bytes=child_bytes) as pages, BulkLoad(store) as bulk:
                for page in pages:
                    written += bulk.apply_rows(page).written
            return written
    finally:
        engine.dispose()


def measure(mode: str, url: str, path: str) -> tuple[float, float, float, str]:
    fresh_database(url)
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.load_bench",
            "--run-mode",
            mode,
            "--database-url",
            url,
            "--file",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    cpu_s, rss_kb, written = out.stdout.split()
    return wall, float(cpu_s), float(rss_kb) / 1024, written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.load_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="large")
    ap.add_argument("--database-url", default=None, help="emptied; default a temporary SQLite file")
    ap.add_argument("--file", default=None, help="a cluster file (default: generated from --preset)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--run-mode", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_mode:
        written = run_mode(args.run_mode, resolve_url(args.database_url), args.file)
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        print(f"{cpu:.2f} {max(own.ru_maxrss, kids.ru_maxrss)} {written}")
        return 0
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        url = resolve_url(args.database_url or f"sqlite:///{tmp}/load.db")
        path = args.file
        if path is None:
            path = os.path.join(tmp, f"{args.preset}.json")
            subprocess.run(
                [sys.executable, "-m", "benchmarks.generate", "--preset", args.preset, "--out", path],
                check=True,
            )
        size = os.path.getsize(path) / 1e6
        print(
            f"load benchmark: {path} ({size:.0f} MB), {url.split(':')[0]}, {os.cpu_count()} cores", flush=True
        )
        print(f"{'mode':<14}{'round':>6}{'wall s':>9}{'CPU s':>8}{'peak RSS MB':>13}{'written':>9}  vs whole")
        modes = args.modes.split(",")
        for r in range(args.rounds):
            got = {mode: measure(mode, url, path) for mode in (modes if r % 2 == 0 else modes[::-1])}
            base = got["whole"][0] if "whole" in got else None
            for mode in modes:
                wall, cpu, rss, written = got[mode]
                ratio = f"{wall / base:.2f}x" if base and mode != "whole" else ""
                print(
                    f"{mode:<14}{r + 1:>6}{wall:>9.1f}{cpu:>8.1f}{rss:>13.0f}{written:>9}  {ratio}",
                    flush=True,
                )
        fresh_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
