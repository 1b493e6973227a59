"""Reads from a PostgreSQL hot standby (``--read-database-url``) beside reads from the primary.

    python -m benchmarks.standby [--preset small] [--webhooks 1,2] [--connections 16] [--duration 4] [--rounds 3] \\
        [--churn 100] [--binds 20] [--capacity-seconds 8] [--capacity-rates 500,2000,8000]

Never touches a given server: it starts a primary and a hot standby of its own (``initdb``,
``pg_basebackup -R``, on free ports, fsync off), loads the preset into the primary and measures,
each subject beside its baseline in the same run:

- check cost: one check through the standby with its per-check freshness verification
  (``StandbyReader``) against the same check through the plain reader on the standby and on the
  primary, in-process, interleaved rounds; microseconds per check;
- throughput: N ``nodeauthz serve`` processes reading from the primary, then N reading from the
  standby, each driven by its own ``benchmarks.loadclient``, while ``benchmarks.churn`` re-applies
  pods on the primary; summed req/s, worst p99, wrong answers; the standby's replay lag (seconds,
  by the same rule the webhook applies, and bytes) sampled every 100 ms during the churned runs;
- bind -> allow: a ``nodeauthz run`` replica (writer syncing from the fake API server into the
  primary, webhook reading from the standby) beside ``nodeauthz serve`` on the primary; a pod bound
  to a node is created and both webhooks are polled until the node may read its secret;
- writer capacity: ``benchmarks.churn`` at rising target rates on the primary (with the standby
  streaming): achieved pod applies (each an edge rewrite) a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from app.graph.dialects.postgresql import PostgresReader, asyncpg_dsn
from app.graph.freshness import Position, PrimaryHistory, Sample, parse_lsn
from app.graph.readers import open_reader
from app.graph.standby import PrimarySampler, ReadReplica
from benchmarks.churn import churning
from benchmarks.generate import generate
from benchmarks.shapes import PRESETS, sample_checks
from benchmarks.sync_procs import free_port
from benchmarks.webhook_load import load_cluster, measure, review, server
from tests.builders import node, pod
from tests.fake_apiserver import FakeApiServer
from tests.pg_server import OwnServer, own_postgres, own_standby
from tests.standby_pair import caught_up, migrated_database

DATABASE = "nodeauthz_bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- check cost -------------------------------------------------------------------------------


async def check_cost(primary: str, standby: str, checks: list[dict[str, Any]], rounds: int, n: int) -> None:
    replica = ReadReplica(5.0)
    sampler = asyncio.create_task(PrimarySampler(primary, replica).run())
    readers = {
        "primary, plain reader": await PostgresReader.open(asyncpg_dsn(primary), pool_size=1),
        "standby, plain reader": await PostgresReader.open(asyncpg_dsn(standby), pool_size=1),
        "standby, verified (StandbyReader)": await open_reader(standby, pool_size=1, replica=replica),
    }
    while True:  # the sampler's first position
        try:
            replica.require_primary_heard()
            break
        except Exception:  # noqa: BLE001 - not heard yet
            await asyncio.sleep(0.05)
    times: dict[str, list[float]] = {k: [] for k in readers}
    for r in range(rounds):
        for label, reader in readers.items() if r % 2 == 0 else reversed(readers.items()):
            for i in range(n):
                c = checks[i % len(checks)]
                t = time.perf_counter()
                await reader.reach(c["node"], c["kind"], c["namespace"], c["name"])
                times[label].append(time.perf_counter() - t)
    sampler.cancel()
    for reader in readers.values():
        await reader.close()
    base = statistics.median(times["standby, plain reader"])
    print(f"\n== check cost, in-process, {rounds} rounds x {n} checks each (one connection)")
    for label, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{label:<36} median {med * 1e6:7.1f} us  p99 {pct(ts, 0.99) * 1e6:7.1f} us  {med / base:5.2f}x"
        )


# -- replication lag --------------------------------------------------------------------------


class LagProbe:
    """The standby's lag every 100 ms, judged as the webhook judges it (``PrimaryHistory``)."""

    def __init__(self, primary: OwnServer, standby: OwnServer) -> None:
        self.history = PrimaryHistory(keep=120.0)
        self.seconds: list[float] = []
        self.bytes: list[int] = []
        self._stop = threading.Event()
        self._conns = [
            psycopg.connect(f"host=127.0.0.1 port={s.port} user=postgres dbname=postgres", autocommit=True)
            for s in (primary, standby)
        ]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        p, s = self._conns
        while not self._stop.is_set():
            at = time.monotonic()
            row = p.execute(
                "SELECT pg_current_wal_flush_lsn()::text, substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8)"
            ).fetchone()
            assert row is not None
            self.history.record(Sample(at, parse_lsn(row[0]), int(row[1], 16)))
            replayed = s.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
            assert replayed is not None
            position = Position(parse_lsn(replayed[0]), None, True)
            lag = self.history.lag(position, time.monotonic())
            if lag is not None:
                self.seconds.append(lag)
            self.bytes.append(max(0, parse_lsn(row[0]) - position.lsn))
            time.sleep(0.1)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            c.close()

    def report(self) -> str:
        s, b = self.seconds, self.bytes
        return (
            f"replay lag over {len(s)} samples: p50 {pct(s, 0.5):.2f} s, p99 {pct(s, 0.99):.2f} s, max {max(s):.2f} s "
            f"(at most one 100 ms sample period of it is the probe's own); bytes behind p50 {pct(b, 0.5):.0f}, "
            f"max {max(b)}"
        )


# -- throughput -------------------------------------------------------------------------------


@contextlib.contextmanager
def webhooks(count: int, primary: str, standby: str | None, logs: Path) -> Iterator[list[tuple[int, int]]]:
    with contextlib.ExitStack() as stack:
        started = []
        for i in range(count):
            port = free_port()
            cmd = [sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--port", str(port)]
            # The graph was loaded, not listed by a writer: no sync marks to wait for.
            env = {"NODEAUTHZ_DATABASE_URL": primary, "NODEAUTHZ_REQUIRE_SYNCED": "none"}
            if standby:
                env["NODEAUTHZ_READ_DATABASE_URL"] = standby
            label = "standby" if standby else "primary"
            started.append((port, stack.enter_context(server(cmd, port, env, logs / f"{label}-{i}.log"))))
        for port, _ in started:  # ready: the standby's first position heard
            deadline = time.monotonic() + 30
            while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code != 200:
                assert time.monotonic() < deadline, f"webhook on {port} not ready"
                time.sleep(0.1)
        yield started


def load(servers: list[tuple[int, int]], args: argparse.Namespace, requests: Path) -> dict[str, Any]:
    """Each server driven by its own load client at once (``webhook_load.measure``); summed."""
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(
            pool.map(lambda s: measure(s[0], s[1], args.connections, args, str(requests), True), servers)
        )
    return {
        "rps": sum(r["rps"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["errors"]), None),
        "server_cpu": sum(r["server_cpu"] for r in results),
    }


def throughput(
    args: argparse.Namespace,
    primary_srv: OwnServer,
    standby_srv: OwnServer,
    primary: str,
    standby: str,
    tmp: Path,
) -> None:
    checks = [c._asdict() for c in sample_checks(PRESETS[args.preset], 0)]
    requests = tmp / "requests.json"
    requests.write_bytes(
        orjson.dumps([{"body": review(c), "allowed": c["expected_allowed"]} for c in checks])
    )
    print(
        f"\n== throughput while churn re-applies {args.churn:g} pods/s on the primary; {args.connections} "
        f"connections per webhook process, {args.duration:g}s per point, {args.rounds} rounds in turn (odd rounds "
        "standby first); medians over rounds, the standby/primary ratio's range in brackets"
    )
    print(
        f"{'webhooks':>8} {'reading from':<14} {'req/s':>9} {'vs primary':>22} {'worst p99':>10} {'server cpu':>10} {'err':>5}"
    )
    for n in args.webhooks:
        runs: dict[str, list[dict[str, Any]]] = {"primary": [], "standby": []}
        with (
            webhooks(n, primary, None, tmp) as on_primary,
            webhooks(n, primary, standby, tmp) as on_standby,
            LagProbe(primary_srv, standby_srv) as lag,  # across every churned measurement
        ):
            targets = [("primary", on_primary), ("standby", on_standby)]
            for r in range(args.rounds):
                for label, servers in targets if r % 2 == 0 else reversed(targets):
                    with churning(primary, args.churn, ["--preset", args.preset]):
                        runs[label].append(load(servers, args, requests))
        ratios = [s["rps"] / p["rps"] for p, s in zip(runs["primary"], runs["standby"], strict=True)]
        for label, rs in runs.items():
            share = (
                "100%"
                if label == "primary"
                else (f"{statistics.median(ratios):.0%} ({min(ratios):.0%}-{max(ratios):.0%})")
            )
            print(
                f"{n:>8} {label:<14} {statistics.median(r['rps'] for r in rs):>9.0f} {share:>22} "
                f"{statistics.median(r['p99_ms'] for r in rs):>8.1f}ms "
                f"{statistics.median(r['server_cpu'] for r in rs):>10.0%} {sum(r['errors'] for r in rs):>5}",
                flush=True,
            )
        print(f"{'':>8}   standby {lag.report()}", flush=True)
        for label, rs in runs.items():
            for r in rs:
                if r["errors"]:
                    print(f"{'':>8}   {label}: first wrong answer: {r['first_error']}", flush=True)


# -- bind -> allow ----------------------------------------------------------------------------


def bind_to_allow(primary_srv: OwnServer, standby_srv: OwnServer, binds: int, tmp: Path) -> None:
    name = f"{DATABASE}_binds"
    primary = migrated_database(primary_srv, name)
    standby = standby_srv.url(name)
    caught_up(primary_srv, standby_srv)
    with FakeApiServer() as api:
        api.create("nodes", node("bench-node"))
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        run_port, serve_port = free_port(), free_port()
        run_cmd = [sys.executable, "-m", "app", "--log-level", "WARNING", "run", "--port", str(run_port),
                   "--kubeconfig", str(kubeconfig), "--read-database-url", standby]  # fmt: skip
        serve_cmd = [
            sys.executable,
            "-m",
            "app",
            "--log-level",
            "WARNING",
            "serve",
            "--port",
            str(serve_port),
        ]
        env = {"NODEAUTHZ_DATABASE_URL": primary}
        with (
            server(run_cmd, run_port, env, tmp / "run.log"),
            server(serve_cmd, serve_port, env, tmp / "serve.log"),
        ):
            for port in (run_port, serve_port):
                deadline = time.monotonic() + 60
                while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code != 200:
                    assert time.monotonic() < deadline, (tmp / "run.log").read_text()[-2000:]
                    time.sleep(0.1)
            lags: dict[str, list[float]] = {"primary": [], "standby": []}
            for i in range(binds):
                secret = f"bind-secret-{i}"
                sar = review({"node": "bench-node", "kind": "secret", "namespace": "bench", "name": secret})
                created = time.monotonic()
                api.create("pods", pod(f"bind-{i}", "bench", "bench-node", secrets=(secret,)))
                threads = [
                    threading.Thread(target=poll, args=(port, sar, created, lags[label]))
                    for label, port in (("primary", serve_port), ("standby", run_port))
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                time.sleep(0.2)
    print(
        f"\n== bind -> allow over {binds} pods (create on the fake API server -> the node may read the secret)"
    )
    for label, ts in lags.items():
        print(
            f"reading from the {label:<8} p50 {pct(ts, 0.5) * 1e3:7.1f} ms  p99 {pct(ts, 0.99) * 1e3:7.1f} ms  max {max(ts) * 1e3:7.1f} ms"
        )


def poll(port: int, sar: dict[str, Any], created: float, out: list[float]) -> None:
    with httpx.Client(timeout=5) as http:
        while time.monotonic() - created < 30:
            if http.post(f"http://127.0.0.1:{port}/authorize", json=sar).json()["status"]["allowed"]:
                out.append(time.monotonic() - created)
                return
            time.sleep(0.002)
    out.append(float("inf"))


# -- writer capacity --------------------------------------------------------------------------


def writer_capacity(primary: str, preset: str, seconds: float, rates: list[float]) -> None:
    """Churn at rising target rates: where the achieved rate stops following is the writer's capacity."""
    print(
        f"\n== writer capacity: pod applies (edge rewrites) on the primary, standby streaming, {seconds:g}s per rate"
    )
    for rate in rates:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.churn", "--database-url", primary, "--rate", str(rate),
             "--preset", preset, "--duration", str(seconds)],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        r = orjson.loads(out)
        print(
            f"target {rate:>7.0f}/s: achieved {r['rate']:>6.0f}/s in {r['transactions']} transactions "
            f"(txn p50 {r['txn_p50_ms']:.1f} ms, p99 {r['txn_p99_ms']:.1f} ms), churn process CPU {r['cpu']:.0%}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.standby", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--webhooks", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--connections", type=int, default=16, help="per webhook process")
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--churn", type=float, default=100.0, help="pod applies a second during throughput runs")
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds, in turn")
    p.add_argument("--binds", type=int, default=20)
    p.add_argument("--check-rounds", type=int, default=6)
    p.add_argument("--capacity-seconds", type=float, default=8.0)
    p.add_argument(
        "--capacity-rates", type=lambda s: [float(x) for x in s.split(",")], default=[500.0, 2000.0, 8000.0]
    )
    args = p.parse_args(argv)
    print(
        f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start (a shared machine: other work "
        "takes CPU too; compare rows of one run, not runs); PostgreSQL 15 primary + hot standby of this run's own, fsync off"
    )
    with tempfile.TemporaryDirectory() as work, own_postgres() as primary_srv:
        tmp = Path(work)
        primary = migrated_database(primary_srv, DATABASE)
        print(
            f"loaded {load_cluster(primary, generate(PRESETS[args.preset], 0))} objects ({args.preset})",
            flush=True,
        )
        with own_standby(primary_srv) as standby_srv:
            caught_up(primary_srv, standby_srv)
            standby = standby_srv.url(DATABASE)
            checks = [c._asdict() for c in sample_checks(PRESETS[args.preset], 0)]
            asyncio.run(check_cost(primary, standby, checks, args.check_rounds, 500))
            throughput(args, primary_srv, standby_srv, primary, standby, tmp)
            bind_to_allow(primary_srv, standby_srv, args.binds, tmp)
            writer_capacity(primary, args.preset, args.capacity_seconds, args.capacity_rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
