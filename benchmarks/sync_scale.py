"""Initial sync across cluster sizes, and what a million pods would take (extrapolated, marked so).

    python -m benchmarks.sync_scale --database-url URL [--sizes 10000,30000,100000] [--target 1000000]

WARNING: the given database is emptied (SQLite: the file is replaced) and left migrated but empty.

Per size (pods, scaled like ``scale_curve``; plus one PV per pod, as ``sync_bench``)
the fake API server is started in its own process with the cluster (its load time
and peak RSS recorded: it holds every object as a dict), then ``nodeauthz sync``
lists pods and PVs into a fresh database (``sync_bench.initial_sync``: wall time to
both sync marks, its CPU and peak RSS). A least-squares line through the measured
points per figure gives the value at ``--target``, printed as *extrapolated*, beside
this machine's available memory: the fake API server is what stops a measured
million-pod sync here, not the writer.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from app.graph.database import is_sqlite, resolve_url
from benchmarks.apiserver_proc import ApiServerProcess
from benchmarks.raw_insert import fresh_database
from benchmarks.shapes import scale_shape
from benchmarks.sync_bench import initial_sync
from benchmarks.sync_procs import peak_rss_mb

DEFAULT_SIZES = (10_000, 30_000, 100_000)
# (label, figure per measured point)
FIGURES = (
    ("fake API server load (s)", "api_load_s"),
    ("fake API server peak RSS (MB)", "api_rss_mb"),
    ("initial sync (s)", "sync_s"),
    ("nodeauthz sync CPU (s)", "writer_cpu_s"),
    ("writer peak RSS (MB)", "rss_mb"),
)


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def line_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line; a flat line through one point."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return my, 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    return my - slope * mx, slope


def measure(
    url: str, pods: int, seed: int, work: Path, timeout: float, list_children: int
) -> dict[str, float]:
    shape = scale_shape(pods)
    with ApiServerProcess(shape, seed, kubeconfig=work / f"kubeconfig-{pods}") as api:
        point = {"pods": float(shape.pods), "api_load_s": api.load_seconds}
        run = initial_sync(
            url, api, work, "sqlite" if is_sqlite(url) else "postgresql", list_children, timeout
        )
        # After the lists: serving one keeps a snapshot of the resource's items beside the objects.
        point["api_rss_mb"] = peak_rss_mb(api.pid) or float("nan")
    point.update(sync_s=run.sync_s, writer_cpu_s=run.writer_cpu_s, rss_mb=run.rss_mb)
    print(
        f"{shape.pods} pods + {shape.pods} PVs: API server loaded in {point['api_load_s']:.1f} s "
        f"({point['api_rss_mb']:.0f} MB), synced in {run.sync_s:.1f} s (writer {run.rss_mb:.0f} MB, "
        f"list children {run.child_rss_mb:.0f} MB)",
        flush=True,
    )
    return point


def report(engine: str, points: list[dict[str, float]], target: int) -> None:
    width = 16
    print(f"\ninitial sync by size, {engine}, {os.cpu_count()} cores (pods + one PV each)")
    sizes = "".join(f"{int(p['pods']):>{width - 5}} pods" for p in points)
    print(f"{'':<32}{sizes}{target:>{width - 1}} pods (least-squares line)")
    xs = [p["pods"] for p in points]
    for label, key in FIGURES:
        a, b = line_fit(xs, [p[key] for p in points])
        cells = "".join(f"{p[key]:>{width}.1f}" for p in points)
        print(f"{label:<32}{cells}{a + b * target:>{width}.0f} extrapolated")
    a, b = line_fit(xs, [p["api_rss_mb"] for p in points])
    print(
        f"memory available now: {available_mb():.0f} MB; the fake API server at {target} pods: "
        f"~{a + b * target:.0f} MB (extrapolated, {b * 1e6 / 1e3:.1f} KB per pod + PV)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sync_scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="emptied before each size")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(DEFAULT_SIZES))
    ap.add_argument("--target", type=int, default=1_000_000, help="the size to extrapolate to")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sync-timeout", type=float, default=3600.0)
    ap.add_argument(
        "--list-children", type=int, default=2, help="as nodeauthz sync's flag (0: lists in the writer)"
    )
    args = ap.parse_args(argv)
    url = resolve_url(args.database_url)
    with tempfile.TemporaryDirectory(prefix="sync-scale-") as tmp:
        try:
            points = [
                measure(url, n, args.seed, Path(tmp), args.sync_timeout, args.list_children)
                for n in args.sizes
            ]
        finally:
            fresh_database(url)  # leave no benchmark data behind
    report("sqlite" if is_sqlite(url) else "postgresql", points, args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
