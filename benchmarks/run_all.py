"""Every benchmark, on SQLite and then PostgreSQL, with its baseline, into one results file.

    python -m benchmarks.run_all --preset small|large --sqlite-dir DIR [--pg-admin-url URL] [--out FILE]

Per database, in order: ``check_cost --load`` (check vs a PK lookup), ``webhook_load``
on that database (vs a trivial Starlette endpoint; again under ``--churn``),
``scale_curve`` (check cost from a thousand pods up), and ``sync_bench`` when the
module exists. Each runs as a subprocess (one at a time: the machine's cores go to
the benchmark in hand); their output goes to the terminal and the results file,
after a header describing the machine. Repeat counts and durations come from the
preset: ``large`` is sized to finish in about 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from benchmarks.scale_curve import create, drop

BENCHMARKS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    check_repeat: int
    scale_sizes: str
    scale_repeat: int
    connections: str
    duration: float
    warmup: float


PLANS = {
    "small": Plan(200, "600,3000", 200, "1,8,32,128", 2.0, 0.5),
    # Measured on 2 cores: loads ~25 s (SQLite) / ~50 s (PostgreSQL) per 150k pods; 12 webhook
    # points x (duration + warm-up + start) per database.
    "large": Plan(2000, "1000,10000,100000,150000", 1000, "1,8,32,128", 10.0, 2.0),
}


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCHMARKS
    ).stdout.strip()
    return [
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}; commit {commit or 'unknown'}",
        f"machine: {os.cpu_count()} cores, {cpu}, {int(mem) // 1024} MiB; load average {load}",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.platform()}",
    ]


class Tee:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        for stream in (sys.stdout, self.out):
            stream.write(text + "\n")
            stream.flush()

    def run(self, title: str, args: list[str]) -> bool:
        """One benchmark as ``python -m``; its output teed line by line. True when it succeeded."""
        self.line(f"\n=== {title}\n$ python -m {' '.join(args)}")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            self.line(line.rstrip("\n"))
        code = proc.wait()
        self.line(f"--- {title}: exit {code} after {time.monotonic() - started:.0f} s")
        return code == 0


def sync_bench_args(url: str, preset: str) -> list[str] | None:
    """``benchmarks.sync_bench``'s arguments, from its --help (another module, its own CLI); None: absent."""
    if not (BENCHMARKS / "sync_bench.py").exists():
        return None
    usage = subprocess.run(
        [sys.executable, "-m", "benchmarks.sync_bench", "--help"], capture_output=True, text=True
    ).stdout
    args = ["benchmarks.sync_bench"]
    if "--database-url" in usage:
        args += ["--database-url", url]
    if "--preset" in usage:
        args += ["--preset", preset]
    return args


def run_database(
    tee: Tee, engine: str, url: str, scale_url: str, args: argparse.Namespace, plan: Plan
) -> dict[str, bool]:
    p = args.preset
    ok = {
        "check_cost": tee.run(
            f"check cost, {engine}",
            ["benchmarks.check_cost", "--database-url", url, "--preset", p, "--load"]
            + ["--repeat", str(plan.check_repeat)],
        ),
    }
    ok["webhook_load"] = tee.run(
        f"webhook load, {engine} (without and with churn {args.churn:g}/s)",
        ["benchmarks.webhook_load", "--database-url", url, "--preset", p, "--churn", f"{args.churn:g}"]
        + ["--connections", plan.connections, "--duration", str(plan.duration), "--warmup", str(plan.warmup)],
    )
    ok["scale_curve"] = tee.run(
        f"scale curve, {engine}",
        ["benchmarks.scale_curve", "--database-url", scale_url, "--sizes", plan.scale_sizes]
        + ["--repeat", str(plan.scale_repeat)],
    )
    sync = sync_bench_args(url, p)
    if sync is None:
        tee.line("\n=== sync bench: benchmarks/sync_bench.py not present, skipped")
    else:
        ok["sync_bench"] = tee.run(f"sync bench, {engine}", sync)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PLANS), default="small")
    ap.add_argument("--sqlite-dir", required=True, type=Path, help="where the SQLite databases go")
    ap.add_argument(
        "--pg-admin-url", help="PostgreSQL admin URL (databases are created); omit to skip PostgreSQL"
    )
    ap.add_argument("--churn", type=float, default=100.0, help="pod applies a second during the churn pass")
    ap.add_argument("--out", type=Path, help="results file (default: DIR/results-<preset>-<time>.txt)")
    args = ap.parse_args(argv)
    plan = PLANS[args.preset]
    args.sqlite_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = args.out or args.sqlite_dir / f"results-{args.preset}-{stamp}.txt"
    started = time.monotonic()
    failed: list[str] = []
    with out_path.open("w") as fp:
        tee = Tee(fp)
        for line in machine():
            tee.line(line)
        tee.line(f"preset {args.preset}; plan {plan}; churn {args.churn:g}/s")
        targets: list[tuple[str, str, str, Callable[[], None]]] = []
        sqlite_url = f"sqlite:///{(args.sqlite_dir / f'bench-{args.preset}.db').resolve()}"
        scale_sqlite = f"sqlite:///{(args.sqlite_dir / 'scale.db').resolve()}"
        targets.append(("sqlite", sqlite_url, scale_sqlite, lambda: drop(sqlite_url, sqlite_url)))
        if args.pg_admin_url:
            from sqlalchemy.engine import make_url

            admin = args.pg_admin_url
            pg_url = make_url(admin).set(database=f"nodeauthz_bench_{args.preset}").render_as_string(False)
            targets.append(("postgresql", pg_url, admin, lambda: drop(admin, pg_url)))
        else:
            tee.line("no --pg-admin-url: PostgreSQL skipped")
        for engine, url, scale_url, cleanup in targets:
            create(scale_url, url)
            try:
                ok = run_database(tee, engine, url, scale_url, args, plan)
            finally:
                cleanup()
            failed += [f"{name} ({engine})" for name, good in ok.items() if not good]
        tee.line(
            f"\nall done in {(time.monotonic() - started) / 60:.1f} min; failed: {', '.join(failed) or 'none'}"
        )
    print(f"results: {out_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
