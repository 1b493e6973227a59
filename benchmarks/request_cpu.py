"""CPU per review inside one process: the webhook app against the trivial endpoint, no network.

    python -m benchmarks.request_cpu --database-url sqlite:///DB [--preset small] [--requests 20000] [--rounds 3]
    python -m benchmarks.request_cpu --database-url postgresql://... --concurrency 32 --baseline-code DIR

Each app (``create_app`` for ``/authorize``, ``webhook_load.trivial_app`` for the baseline) is
called straight through ASGI with the realistic mix (``sample_checks``: about half refused, each
refusal an INFO audit line, written to /dev/null), metrics and the denial report on, in turn, for
``--rounds`` rounds, on uvloop (what ``serve`` runs). ``--concurrency N`` keeps N reviews in
flight at once, as N client connections would (what lets the PostgreSQL reader answer waiting
checks together). It prints CPU microseconds per review (``time.process_time``: what a CPU-bound
worker spends, which a machine shared with other work disturbs far less than req/s) and the
webhook's share of the trivial endpoint's reviews per CPU-second. On a PostgreSQL server of this
machine, the CPU its reader backends spent is added ("db"), since they share the cores: the
share is then of app + db. HTTP parsing and the socket (uvicorn, httptools) are left out: both
pay them alike, ``webhook_load`` measures them.

``--baseline-code DIR`` measures the ``app`` package of another checkout (say ``git worktree add
--detach DIR COMMIT``) beside this one, each round in a process of its own, in turn (reversed on
even rounds), with this harness. ``--profile`` prints the webhook's cProfile instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvloop

from app.graph.database import resolve_url
from app.telemetry.logs import configure_logging
from app.web.app import create_app
from app.web.settings import Settings
from benchmarks.shapes import PRESETS, sample_checks
from benchmarks.webhook_load import database_cpu, review, trivial_app

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
ROOT = Path(__file__).resolve().parent.parent


def scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/authorize",
        "raw_path": b"/authorize",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }


async def call(app: Asgi, body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope(body), receive, send)
    return status


async def cpu_per_review(
    app: Asgi,
    bodies: list[bytes],
    n: int,
    concurrency: int = 1,
    profile: cProfile.Profile | None = None,
    db_cpu: Callable[[], float] = lambda: 0.0,
) -> tuple[float, float]:
    """(this process's, the database's) CPU microseconds per review, ``concurrency`` in flight."""

    async def client(first: int, n: int) -> None:
        for i in range(first, n, concurrency):
            assert await call(app, bodies[i % len(bodies)]) == 200

    # Warm caches and open the connections the measured part will use.
    await asyncio.gather(*(client(k, len(bodies) * 10) for k in range(concurrency)))
    db_started = db_cpu()
    started = time.process_time()
    if profile is not None:
        profile.enable()
    await asyncio.gather(*(client(k, n) for k in range(concurrency)))
    if profile is not None:
        profile.disable()
    return (time.process_time() - started) / n * 1e6, (db_cpu() - db_started) / n * 1e6


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    checks = sample_checks(PRESETS[args.preset], args.seed)
    bodies = [
        orjson.dumps(review({"node": c.node, "kind": c.kind, "namespace": c.namespace, "name": c.name}))
        for c in checks
    ]
    url = resolve_url(args.database_url)
    webhook = create_app(Settings(database_url=url))
    trivial = trivial_app()
    db_cpu = database_cpu(url)
    rounds = []
    async with webhook.router.lifespan_context(webhook):
        if args.profile:
            profile = cProfile.Profile()
            await cpu_per_review(webhook, bodies, args.requests, args.concurrency, profile)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
            return []
        for _ in range(args.rounds):
            base, _ = await cpu_per_review(trivial, bodies, args.requests, args.concurrency)
            hook, db = await cpu_per_review(webhook, bodies, args.requests, args.concurrency, db_cpu=db_cpu)
            rounds.append({"trivial": base, "webhook": hook, "db": db})
    return rounds


def print_round(label: str, r: dict[str, float]) -> float:
    share = r["trivial"] / (r["webhook"] + r["db"])
    db = f" + db {r['db']:6.1f} us" if r["db"] else ""
    print(f"{label}: trivial {r['trivial']:6.1f} us  webhook {r['webhook']:6.1f} us{db}  share {share:.1%}")
    return share


def in_child(args: argparse.Namespace, code: Path | None) -> dict[str, float]:
    """One round in a process of its own, with ``code``'s app package (default: this checkout's)."""
    with tempfile.TemporaryDirectory() as tmp:
        # Only ``app`` comes from ``code``: this harness (benchmarks) stays this checkout's.
        (Path(tmp) / "app").symlink_to((code or ROOT) / "app")
        argv = [
            sys.executable,
            "-m",
            "benchmarks.request_cpu",
            *("--database-url", args.database_url, "--preset", args.preset, "--seed", str(args.seed)),
            *("--requests", str(args.requests), "--concurrency", str(args.concurrency), "--rounds", "1"),
            "--json",
        ]
        env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}"}
        out = subprocess.run(argv, env=env, cwd=tmp, check=True, capture_output=True).stdout
    result: dict[str, float] = orjson.loads(out)[0]
    return result


def compare(args: argparse.Namespace) -> None:
    print(
        f"CPU per review, in-process, {args.requests} reviews per point, {args.concurrency} in flight; "
        f"baseline code: {args.baseline_code}"
    )
    shares: dict[str, list[float]] = {"baseline": [], "this": []}
    for n in range(args.rounds):
        order = [("baseline", args.baseline_code), ("this", None)]
        for label, code in order if n % 2 == 0 else order[::-1]:
            shares[label].append(print_round(f"round {n + 1} {label:<8}", in_child(args, code)))
    for label, values in shares.items():
        print(f"{label}: webhook reviews per CPU-second {statistics.median(values):.1%} of trivial (median)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.request_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a loaded graph (e.g. check_cost --load)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="whose sample checks to send")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=1, help="reviews in flight at once (default 1)")
    p.add_argument("--baseline-code", type=Path, help="another checkout whose app to measure beside this one")
    p.add_argument("--profile", action="store_true", help="cProfile the webhook instead")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # --baseline-code's children
    args = p.parse_args(argv)
    if args.baseline_code:
        compare(args)
        return 0
    with open(os.devnull, "w") as devnull:
        configure_logging("INFO", "text", stream=devnull)  # the audit lines are formatted and written
        rounds = uvloop.run(run(args))
    if args.json:
        sys.stdout.write(orjson.dumps(rounds).decode())
    elif rounds:
        print(
            f"CPU per review, in-process, {args.requests} reviews per point, {args.concurrency} in flight, "
            f"realistic mix ({len(sample_checks(PRESETS[args.preset], args.seed))} checks)"
        )
        shares = [print_round(f"round {n + 1}", r) for n, r in enumerate(rounds)]
        print(f"webhook reviews per CPU-second: {statistics.median(shares):.1%} of trivial (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
