"""Load test of ``POST /authorize``, side by side with a trivial Starlette endpoint served the same way.

    python -m benchmarks.webhook_load                       # temp SQLite, small preset (~30 s)
    python -m benchmarks.webhook_load --database-url sqlite:///big.db --checks checks.json
    python -m benchmarks.webhook_load --database-url postgresql://... --load small

Each target is a uvicorn server (uvloop, httptools, one worker, no access log)
in its own process: ``nodeauthz serve`` for the webhook, ``trivial_app`` for the
baseline (reads the body, answers a constant SubjectAccessReview: what HTTP,
the event loop and Starlette cost). The load comes from ``benchmarks.loadclient``
in another process, closed loop, keep-alive, at each concurrency. Requests are
SubjectAccessReviews built from ``--checks`` (``benchmarks.generate --checks``
output), else from ``sample_checks`` of ``--preset``/``--seed``; answers are
compared with the checks' expected results (the "err" column).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.database import make_engine, resolve_url
from app.edges import derive, owner_kind
from app.graph_store import GraphStore
from app.migrate import upgrade
from benchmarks.generate import generate
from benchmarks.shapes import PRESETS, sample_checks

RESOURCES = {
    "secret": "secrets",
    "configmap": "configmaps",
    "pvc": "persistentvolumeclaims",
    "pv": "persistentvolumes",
    "serviceaccount": "serviceaccounts",
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
    store, pending, count = GraphStore(engine, writer="bench"), [], 0
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(command: list[str], port: int, env: Mapping[str, str], log: Path) -> Iterator[int]:
    with log.open("wb") as fp:
        proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=fp, stderr=fp)
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
    port: int, pid: int, concurrency: int, args: argparse.Namespace, requests_file: str, verify: bool
) -> dict[str, Any]:
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
    result["server_cpu"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    return result


def run_target(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str],
    args: argparse.Namespace,
    requests_file: str,
) -> None:
    with server(command, port, env, Path(requests_file).with_name(f"{port}.log")) as pid:
        for c in args.concurrency:
            r = measure(port, pid, c, args, requests_file, verify=name.startswith("webhook"))
            print(
                f"{name:<28} {c:>5} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['p999_ms']:>8.2f} {r['client_cpu']:>6.0%} {r['server_cpu']:>6.0%} {r['errors']:>5}",
                flush=True,
            )
            if r["errors"]:
                print(f"    first error: {r['first_error']}", flush=True)


def read_path(urls: list[str], checks: list[dict[str, Any]], n: int = 3000) -> None:
    """The request path's read alone, per way of doing it (what chose app.readers' design)."""
    import asyncio

    import uvloop
    from sqlalchemy import Engine

    from app.database import is_sqlite, make_read_engine
    from app.reachability import has_path, reach_params
    from app.readers import open_reader

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
            ("app.readers reader", lambda c: reader.reach(c["node"], c["kind"], c["namespace"], c["name"])),
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
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 128])
    p.add_argument("--duration", type=float, default=2.0, help="seconds measured per point")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--log-level", default="INFO", help="the webhook's log level (default INFO)")
    p.add_argument("--no-baseline", action="store_true", help="skip the trivial endpoint")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        urls = [resolve_url(u) for u in args.database_url]
        shape = PRESETS[args.preset]
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
            f"{'target':<28} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9ms':>8} "
            f"{'client':>6} {'server':>6} {'err':>5}"
        )
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
        if not args.no_baseline:
            port = free_port()
            run_target(
                "trivial starlette",
                [*uvicorn, "--factory", "benchmarks.webhook_load:trivial_app", "--port", str(port)],
                port,
                {},
                args,
                requests_file,
            )
        for url in urls:
            port = free_port()
            backend = "sqlite" if url.startswith("sqlite") else "postgresql"
            # INFO: the audit line per refusal is part of the real cost (the log goes to a temp file).
            cmd = [sys.executable, "-m", "app", "--log-level", args.log_level, "serve", "--port", str(port)]
            run_target(
                f"webhook ({backend})", cmd, port, {"NODEAUTHZ_DATABASE_URL": url}, args, requests_file
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
