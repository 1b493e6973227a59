"""Load test of ``POST /authorize``, side by side with a trivial Starlette endpoint served the same way.

    python -m benchmarks.webhook_load                       # temp SQLite, small preset (~30 s)
    python -m benchmarks.webhook_load --database-url sqlite:///big.db --checks checks.json
    python -m benchmarks.webhook_load --database-url postgresql://... --load --preset small
    python -m benchmarks.webhook_load --database-url sqlite:///big.db --preset large --churn 100

Each target is a uvicorn server (uvloop, httptools, one worker, no access log)
in its own process: ``nodeauthz serve`` for the webhook, ``trivial_app`` for the
baseline (reads the body, answers a constant SubjectAccessReview: what HTTP,
the event loop and Starlette cost). The load comes from ``benchmarks.loadclient``
in another process, closed loop, keep-alive, at each concurrency. Requests are
SubjectAccessReviews built from ``--checks`` (``benchmarks.generate --checks``
output), else from ``sample_checks`` of ``--preset``/``--seed``; answers are
compared with the checks' expected results (the "err" column).

``--churn RATE`` measures each webhook a second time while ``benchmarks.churn``
re-applies pods through the graph store at RATE a second (a third process: real
edge rewrites in write transactions against the same database). "vs triv" is
the webhook's req/s over the trivial endpoint's at the same connection count;
"client", "server" and "churn" are each process's CPU share (1.0 = one core); "db" is that of
the webhook's PostgreSQL backends (its reader's connections) when the server runs on this machine:
they share its cores, so the summary also gives the share per CPU-second of server and db together.

``--baseline-code DIR`` serves each database a second time from the ``app`` package of another
checkout (say ``git worktree add --detach DIR COMMIT``), named "... base": the previous code,
measured in turn with this one in the same run.

``--observability compare`` serves each database twice, with metrics and the denial report off
(``NODEAUTHZ_METRICS=false NODEAUTHZ_DENIAL_REPORT=false``) and on (the defaults), measured in
turn at each connection count, and prints on's req/s as a share of off's (target: >= 95%), and the
same for requests per second of server CPU (what a CPU-bound server would serve; steadier on a
shared machine). ``--rounds N`` repeats every point N times, in turn; the summary gives the median
of the per-round shares and their range.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.graph.database import make_engine, resolve_url
from app.graph.derivation import derive, owner_kind
from app.graph.migrations import upgrade
from benchmarks.churn import churning
from benchmarks.generate import generate
from benchmarks.scale_curve import scale_shape
from benchmarks.shapes import PRESETS, sample_checks
from benchmarks.writer import benchmark_store

RESOURCES = {
    "secret": "secrets",
    "configmap": "configmaps",
    "pvc": "persistentvolumeclaims",
    "pv": "persistentvolumes",
    "serviceaccount": "serviceaccounts",
    "service": "services",  # --mix static: answered by the static node rules
}
_CONSTANT = orjson.dumps(
    {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": {"allowed": True}}
)


def trivial_app() -> Any:
    """The baseline: a Starlette POST endpoint that reads the body and returns a constant answer."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(_CONSTANT, media_type="application/json")

    return Starlette(routes=[Route("/authorize", endpoint, methods=["POST"])])


def load_cluster(url: str, objects: Iterable[Mapping[str, Any]], batch: int = 2000) -> int:
    upgrade(url)
    engine = make_engine(url)
    store, pending, count = benchmark_store(engine, "webhook-load"), [], 0
    try:
        for obj in objects:
            if owner_kind(obj) is not None:
                pending.append(derive(obj))
                count += 1
            if len(pending) >= batch:
                store.apply(pending)
                pending = []
        store.apply(pending)
    finally:
        engine.dispose()
    return count


def select_mix(checks: list[dict[str, Any]], mix: str) -> list[dict[str, Any]]:
    """Which requests a run sends: separates the database read and the audit line from HTTP."""
    if mix == "allowed":
        return [c for c in checks if c.get("expected_allowed")]
    if mix == "static":
        return [
            {**c, "kind": "service", "namespace": "default", "name": "kubernetes", "expected_allowed": True}
            for c in checks
        ]
    return checks


def review(check: Mapping[str, Any]) -> dict[str, Any]:
    attrs = {
        "namespace": check["namespace"],
        "verb": "get",
        "version": "v1",
        "resource": RESOURCES[check["kind"]],
        "name": check["name"],
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {
            "resourceAttributes": {k: v for k, v in attrs.items() if v},
            "user": f"system:node:{check['node']}",
            "groups": ["system:nodes", "system:authenticated"],
        },
        "status": {"allowed": False},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu(pid: int) -> float:
    """CPU seconds ``pid`` has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(url: str) -> Callable[[], float]:
    """CPU seconds of the webhook readers' PostgreSQL backends on ``url``, if its server runs on this
    machine (its backends are local processes); else always 0 (SQLite: the reads are in the server)."""
    from sqlalchemy.engine import make_url

    from app.graph.dialects.postgresql import READER_APPLICATION_NAME, asyncpg_dsn

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.host not in ("127.0.0.1", "localhost", "::1"):
        return lambda: 0.0
    import psycopg

    def cpu() -> float:
        with psycopg.connect(asyncpg_dsn(url), autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                (READER_APPLICATION_NAME,),
            ).fetchall()
        return sum(process_cpu(pid) for (pid,) in pids)

    return cpu


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and every live process below it (uvicorn's --workers children)."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)
        own[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        total += own.get(p, 0.0)
        stack.extend(children.get(p, []))
    return total


@contextlib.contextmanager
def server(
    command: list[str], port: int, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Iterator[int]:
    with log.open("wb") as fp:
        proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=fp, stderr=fp, cwd=cwd)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 404):
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {command} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def measure(
    port: int,
    pid: int,
    concurrency: int,
    args: argparse.Namespace,
    requests_file: str,
    verify: bool,
    db_cpu: Callable[[], float] = lambda: 0.0,
) -> dict[str, Any]:
    db0 = db_cpu()
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.loadclient",
            "--port",
            str(port),
            "--concurrency",
            str(concurrency),
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
            "--requests",
            requests_file,
            *([] if verify else ["--no-verify"]),
        ],
        check=True,
        capture_output=True,
    ).stdout
    result: dict[str, Any] = orjson.loads(out)
    seconds = time.monotonic() - t0
    result["server_cpu"] = (cpu_seconds(pid) - cpu0) / seconds
    result["db_cpu"] = (db_cpu() - db0) / seconds
    return result


def print_point(name: str, r: Mapping[str, Any], baseline: Mapping[int, float]) -> None:
    base = baseline.get(r["concurrency"])
    share = f"{r['rps'] / base:.0%}" if base and not name.startswith("trivial") else "-"
    churn = f"{r['churn_cpu']:.0%}" if "churn_cpu" in r else "-"
    db = f"{r['db_cpu']:.0%}" if r.get("db_cpu") else "-"
    print(
        f"{name:<32} {r['concurrency']:>5} {r['rps']:>9.0f} {share:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
        f"{r['p999_ms']:>8.2f} {r['client_cpu']:>6.0%} {r['server_cpu']:>6.0%} {db:>6} {churn:>6} {r['errors']:>5}",
        flush=True,
    )
    if r["errors"]:
        print(f"    first error: {r['first_error']}", flush=True)


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int
    url: str | None = None  # a webhook's database: churned when --churn is given
    db_cpu: Callable[[], float] = lambda: 0.0  # its PostgreSQL backends' CPU seconds (database_cpu)


def run_point(target: Target, c: int, args: argparse.Namespace, requests_file: str) -> list[dict[str, Any]]:
    """One connection count against one server; for a webhook under --churn, again while churning."""
    verify = target.url is not None
    r = measure(target.port, target.pid, c, args, requests_file, verify, target.db_cpu)
    r["target"] = target.name
    if target.name.startswith("trivial"):
        args.baseline[c] = r["rps"]
        args.baseline_cpu[c] = per_cpu(r)
    elif args.baseline.get(c):  # against this round's baseline, measured just before
        r["share"] = r["rps"] / args.baseline[c]
        r["cpu_share"] = per_cpu(r) / args.baseline_cpu[c] if args.baseline_cpu.get(c) else 0.0
        r["total_cpu_share"] = per_total_cpu(r) / args.baseline_cpu[c] if args.baseline_cpu.get(c) else 0.0
    print_point(target.name, r, args.baseline)
    out = [r]
    if target.url is not None and args.churn > 0:
        label = f"{target.name} +churn {args.churn:g}/s"
        with churning(target.url, args.churn, shape_args(args)) as churn:
            c0, t0 = cpu_seconds(churn.pid), time.monotonic()
            r = measure(target.port, target.pid, c, args, requests_file, verify, target.db_cpu)
            r["churn_cpu"] = (cpu_seconds(churn.pid) - c0) / (time.monotonic() - t0)
        r["target"] = label
        print_point(label, r, args.baseline)
        k = churn.result
        print(
            f"    churn: {k['rate']:.0f} pod applies/s achieved of {k['target_rate']:g}/s in "
            f"{k['transactions']} transactions (p50 {k['txn_p50_ms']:.1f} ms, p99 {k['txn_p99_ms']:.1f} ms)",
            flush=True,
        )
        out.append(r)
    return out


def shape_args(args: argparse.Namespace) -> list[str]:
    scale = ["--scale-pods", str(args.scale_pods)] if args.scale_pods else []
    return ["--preset", args.preset, "--seed", str(args.seed), *scale]


def per_cpu(r: Mapping[str, Any]) -> float:
    """Requests per second of server CPU: what a CPU-bound server would serve (steadier when shared)."""
    return float(r["rps"] / r["server_cpu"]) if r["server_cpu"] else 0.0


def per_total_cpu(r: Mapping[str, Any]) -> float:
    """Requests per second of server + database backend CPU (they share the machine's cores)."""
    total = r["server_cpu"] + r.get("db_cpu", 0.0)
    return float(r["rps"] / total) if total else 0.0


# The targets at 32 connections: share of the trivial endpoint's req/s, and p99 in ms.
TARGETS = {"sqlite": (0.50, 5.0), "postgresql": (0.35, 10.0)}


def summary(results: list[dict[str, Any]], at: int = 32) -> None:
    """The targets at ``at`` connections, per round: req/s share of that round's trivial endpoint,
    p99; and the share per second of server CPU, which a machine shared with other work disturbs less."""
    for r in results:
        name = r["target"]
        if "share" not in r or r["concurrency"] != at:
            continue
        need, p99 = TARGETS["sqlite" if "(sqlite)" in name else "postgresql"]
        share, cpu_share = r["share"], r["cpu_share"]
        print(
            f"target at {at} conns, {name}: {share:.1%} of trivial (>= {need:.0%}: "
            f"{'met' if share >= need else 'NOT met'}), p99 {r['p99_ms']:.2f} ms "
            f"(<= {p99:g} ms: {'met' if r['p99_ms'] <= p99 else 'NOT met'}); "
            f"per server CPU-second {cpu_share:.1%} of trivial"
            + (f", per server + db CPU-second {r['total_cpu_share']:.1%}" if r.get("db_cpu") else "")
        )


def read_path(urls: list[str], checks: list[dict[str, Any]], n: int = 3000) -> None:
    """The request path's read alone, per way of doing it (what chose app.graph.readers' design)."""
    import asyncio

    import uvloop
    from sqlalchemy import Engine

    from app.graph.database import is_sqlite, make_read_engine
    from app.graph.reach import has_path, reach_params
    from app.graph.readers import open_reader

    def report(label: str, times: list[float]) -> None:
        times.sort()
        p50, p99 = times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6
        print(f"{label:<44} p50 {p50:8.1f} us   p99 {p99:8.1f} us")

    def sqlalchemy(engine: Engine, c: dict[str, Any]) -> bool:
        with engine.connect() as conn:
            return has_path(conn, c["node"], c["kind"], c["namespace"], c["name"]).found

    async def run(url: str) -> None:
        backend = "sqlite" if is_sqlite(url) else "postgresql"
        engine, reader = make_read_engine(url), await open_reader(url)
        ways: list[tuple[str, Any]] = [
            ("SQLAlchemy has_path (sync)", lambda c: asyncio.sleep(0, sqlalchemy(engine, c))),
            (
                "app.graph.readers reader",
                lambda c: reader.reach(c["node"], c["kind"], c["namespace"], c["name"]),
            ),
        ]
        if backend == "sqlite":
            raw: Any = reader  # the same statement on the same connection, handed to a thread

            def sync_reach(c: dict[str, Any]) -> Any:
                params = reach_params(c["node"], c["kind"], c["namespace"], c["name"])
                return raw._conn.execute(raw._sql, tuple(params[k] for k in raw._order)).fetchone()

            ways.append(("same read via asyncio.to_thread", lambda c: asyncio.to_thread(sync_reach, c)))
        for label, way in ways:
            times = []
            for i in range(n):
                c = checks[i % len(checks)]
                start = time.perf_counter()
                await way(c)
                times.append(time.perf_counter() - start)
            report(f"{backend}: {label}", times)
        await reader.close()
        engine.dispose()

    for url in urls:
        uvloop.run(run(url))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.webhook_load", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--database-url", action="append", default=[], help="repeatable; default: a temp SQLite file"
    )
    p.add_argument(
        "--load", action="store_true", help="migrate and load --preset into each --database-url first"
    )
    p.add_argument("--read-path", action="store_true", help="time the database read alone, no HTTP")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checks", help="JSON list of checks (benchmarks.generate --checks)")
    p.add_argument(
        "--mix",
        choices=("all", "allowed", "static"),
        default="all",
        help="all: the sample checks (about half refused, each refusal an audit line); allowed: only those "
        "allowed; static: the same nodes asking for services (static rules, no database read)",
    )
    p.add_argument(
        "--connections",
        "--concurrency",
        dest="concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8, 32, 128],
        help="comma-separated connection counts (default 1,8,32,128)",
    )
    p.add_argument("--churn", type=float, default=0.0, help="also measure under RATE pod applies a second")
    p.add_argument(
        "--scale-pods", type=int, help="the database is benchmarks.scale_curve's cluster of this many pods"
    )
    p.add_argument("--duration", type=float, default=2.0, help="seconds measured per point")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--log-level", default="INFO", help="the webhook's log level (default INFO)")
    p.add_argument("--no-baseline", action="store_true", help="skip the trivial endpoint")
    p.add_argument("--rounds", type=int, default=1, help="measure every point this many times, in turn")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of every server")
    p.add_argument(
        "--baseline-code", type=Path, help='also serve each database from this checkout\'s app ("base")'
    )
    p.add_argument(
        "--observability", choices=sorted(OBSERVABILITY), default="on",
        help="metrics and the denial report: on (default), off, or compare (both servers, in turn)",
    )  # fmt: skip
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        urls = [resolve_url(u) for u in args.database_url]
        shape = scale_shape(args.scale_pods) if args.scale_pods else PRESETS[args.preset]
        if not urls:
            urls = [f"sqlite:///{tmp}/bench.db"]
            args.load = True
        if args.load:
            for url in urls:
                print(
                    f"loaded {load_cluster(url, generate(shape, args.seed))} objects into "
                    f"{url.split('@')[-1]}",
                    flush=True,
                )
        if args.checks:
            checks = orjson.loads(Path(args.checks).read_bytes())
        else:
            checks = [c._asdict() for c in sample_checks(shape, args.seed)]
        checks = select_mix(checks, args.mix)
        if args.read_path:
            read_path(urls, checks)
            return 0
        requests_file = f"{tmp}/requests.json"
        Path(requests_file).write_bytes(
            orjson.dumps([{"body": review(c), "allowed": c.get("expected_allowed")} for c in checks])
        )

        print(
            f"cores: {os.cpu_count()}; {len(checks)} distinct checks; {args.duration}s per point "
            f"after {args.warmup}s warm-up; one uvicorn worker per server"
        )
        print(
            f"{'target':<32} {'conns':>5} {'req/s':>9} {'vs triv':>7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'p99.9ms':>8} {'client':>6} {'server':>6} {'db':>6} {'churn':>6} {'err':>5}"
        )
        args.baseline = {}
        args.baseline_cpu = {}
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        with contextlib.ExitStack() as stack:
            # Every server up first, then each connection count against each in turn: a noisy
            # moment on a shared machine hits the baseline and the webhook alike.
            targets = []
            logs = Path(requests_file).parent
            if not args.no_baseline:
                port = free_port()
                cmd = [*uvicorn, "--factory", "benchmarks.webhook_load:trivial_app", "--port", str(port)]
                cmd += ["--workers", str(args.workers)] if args.workers > 1 else []
                pid = stack.enter_context(server(cmd, port, {}, logs / f"{port}.log"))
                targets.append(Target("trivial starlette", port, pid))
            codes: list[tuple[str, Path | None]] = [("", None)]
            if args.baseline_code:
                codes.append((" base", args.baseline_code.resolve()))
            for url, (label, extra), (suffix, code) in itertools.product(
                urls, OBSERVABILITY[args.observability], codes
            ):
                backend = "sqlite" if url.startswith("sqlite") else "postgresql"
                port = free_port()
                # INFO: the audit line per refusal is part of the real cost (the log goes to a temp file).
                cmd = [
                    sys.executable,
                    "-m",
                    "app",
                    "--log-level",
                    args.log_level,
                    "serve",
                    "--port",
                    str(port),
                    *(["--workers", str(args.workers)] if args.workers > 1 else []),
                ]
                env = {"NODEAUTHZ_DATABASE_URL": url, **extra}
                cwd = None
                if code is not None:  # only ``app`` from there: python -m looks in cwd first
                    cwd = logs / f"code-{port}"
                    cwd.mkdir()
                    (cwd / "app").symlink_to(code / "app")
                    env["PYTHONPATH"] = str(cwd)
                pid = stack.enter_context(server(cmd, port, env, logs / f"{port}.log", cwd))
                name = f"webhook ({backend}){label}{suffix}"
                targets.append(Target(name, port, pid, url, database_cpu(url)))
            # Odd rounds take the webhooks in reverse order: neither side always runs right after the baseline.
            results = [
                {**r, "round": n}
                for n in range(args.rounds)
                for c in args.concurrency
                for t in in_turn(targets, n)
                for r in run_point(t, c, args, requests_file)
            ]
        summary(results)
        if args.observability == "compare":
            observability_summary(results)
    return 0


def in_turn(targets: list[Target], round_number: int) -> list[Target]:
    """The baseline first, then the webhooks: in order in even rounds, reversed in odd ones."""
    baseline = [t for t in targets if t.url is None]
    webhooks = [t for t in targets if t.url is not None]
    return baseline + (webhooks if round_number % 2 == 0 else webhooks[::-1])


# --observability: which webhook servers to start per database (name suffix, extra environment).
_OFF = {"NODEAUTHZ_METRICS": "false", "NODEAUTHZ_DENIAL_REPORT": "false"}
OBSERVABILITY: dict[str, list[tuple[str, dict[str, str]]]] = {
    "on": [("", {})],
    "off": [(" obs off", _OFF)],
    "compare": [(" obs off", _OFF), (" obs on", {})],
}


def observability_summary(results: list[dict[str, Any]]) -> None:
    """Metrics + denial buffer on versus off, per database and connection count (target >= 95%)."""
    by_key = {(r["target"], r["concurrency"], r["round"]): r for r in results}
    shares: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for (name, c, n), on in sorted(by_key.items()):
        off = by_key.get((name.removesuffix(" obs on") + " obs off", c, n))
        if name.endswith(" obs on") and off:
            per_cpu = (on["rps"] / on["server_cpu"]) / (off["rps"] / off["server_cpu"])
            shares.setdefault((name.removesuffix(" obs on"), c), []).append((on["rps"] / off["rps"], per_cpu))
    for (name, c), pairs in shares.items():
        rps, cpu = sorted(p[0] for p in pairs), sorted(p[1] for p in pairs)
        median = statistics.median(rps)
        print(
            f"metrics + denial report on, {name}, {c} conns, {len(pairs)} rounds: req/s {median:.1%} of off "
            f"(range {rps[0]:.1%}-{rps[-1]:.1%}; >= 95%: {'met' if median >= 0.95 else 'NOT met'}); "
            f"req per server CPU-second {statistics.median(cpu):.1%} (range {cpu[0]:.1%}-{cpu[-1]:.1%})"
        )


if __name__ == "__main__":
    sys.exit(main())
