"""Write churn: pods re-applied through the graph store at a steady rate, as its own process.

    python -m benchmarks.churn --database-url URL --rate 100 [--preset small --seed 0] [--duration S]

Takes the first ``--pods`` running workload pods of the preset's cluster (the
database should hold that cluster) and re-applies them round-robin, each time
with a different extra secret volume, so every apply is a real edge rewrite:
the old secret edge and its orphaned vertex go, a new vertex and edge come, in
one write transaction. The pods' own references are kept, so the sample checks'
answers do not change. Runs until ``--duration`` or SIGTERM, then restores the
original pods and prints one JSON object: applies, achieved rate, transaction
latencies, CPU share.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.graph.database import make_engine, resolve_url
from app.graph.derivation import DerivedObject, derive
from benchmarks.generate import generate
from benchmarks.scale_curve import scale_shape
from benchmarks.shapes import PRESETS, SYSTEM_NAMESPACE, Shape
from benchmarks.writer import benchmark_store

TICK_S = 0.02  # at most 50 write transactions a second; higher rates batch several pods per one


def churn_pods(shape: Shape, seed: int, count: int) -> list[dict[str, Any]]:
    """The first ``count`` bound, running workload pods the generator emits."""
    pods = (
        o
        for o in generate(shape, seed)
        if o["kind"] == "Pod"
        and o["metadata"]["namespace"] != SYSTEM_NAMESPACE
        and o["spec"].get("nodeName")
        and o["status"]["phase"] == "Running"
    )
    return list(itertools.islice(pods, count))


def variants(pods: list[dict[str, Any]]) -> Iterator[DerivedObject]:
    """Endless re-applies: pod i, version v gets secret ``churn-<v>-<pod>``; resourceVersions climb."""
    for version in itertools.count(1):
        for pod in pods:
            obj = copy.deepcopy(pod)
            name = obj["metadata"]["name"]
            obj["metadata"]["resourceVersion"] = str(10**9 + version)
            obj["spec"]["volumes"].append(
                {"name": "churn", "secret": {"secretName": f"churn-{version}-{name}"}}
            )
            yield derive(obj)


def run(url: str, pods: list[dict[str, Any]], rate: float, duration: float | None) -> dict[str, Any]:
    engine = make_engine(url)
    store = benchmark_store(engine, "churn")
    stop = False

    def on_term(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    source = variants(pods)
    tick = max(1.0 / rate, TICK_S)
    latencies: list[float] = []
    done = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + duration if duration else float("inf")
    try:
        for k in itertools.count(1):
            if stop or time.perf_counter() >= deadline:
                break
            due = int(rate * (time.perf_counter() - start)) - done
            if due > 0:
                batch = list(itertools.islice(source, due))
                t = time.perf_counter()
                store.apply(batch)
                latencies.append(time.perf_counter() - t)
                done += len(batch)
            time.sleep(max(0.0, start + k * tick - time.perf_counter()))
        elapsed = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        store.apply(derive(p) for p in pods)  # back to the cluster the checks were sampled from
        engine.dispose()
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")
        )

    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "target_rate": rate,
        "applies": done,
        "transactions": len(latencies),
        "seconds": elapsed,
        "rate": done / elapsed if elapsed else 0.0,
        "txn_p50_ms": pct(0.5),
        "txn_p99_ms": pct(0.99),
        "cpu": cpu / elapsed if elapsed else 0.0,
    }


@dataclass
class Churn:
    """A running churn process: its pid (for CPU accounting) and, once stopped, its JSON report."""

    pid: int
    result: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def churning(url: str, rate: float, shape_args: list[str]) -> Iterator[Churn]:
    """Run ``python -m benchmarks.churn`` for the duration of the block (started once it is ready)."""
    cmd = [sys.executable, "-m", "benchmarks.churn", "--database-url", url, "--rate", str(rate), *shape_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stderr.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"churn did not start: {line}{proc.stderr.read()[-2000:]}")
    churn = Churn(proc.pid)
    try:
        yield churn
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"churn failed ({proc.returncode}): {err[-2000:]}")
        churn.result.update(orjson.loads(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.churn", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--rate", type=float, required=True, help="pod applies per second")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--scale-pods", type=int, help="the cluster is benchmarks.scale_curve's of this size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pods", type=int, default=200, help="distinct pods to cycle through")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until SIGTERM)")
    args = p.parse_args(argv)
    if args.rate <= 0:
        p.error("--rate must be positive")
    shape = scale_shape(args.scale_pods) if args.scale_pods else PRESETS[args.preset]
    pods = churn_pods(shape, args.seed, args.pods)
    if not pods:
        p.error("the preset has no running workload pods to churn")
    print("ready", file=sys.stderr, flush=True)
    result = run(resolve_url(args.database_url), pods, args.rate, args.duration)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
