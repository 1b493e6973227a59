"""CPU per review inside one process: the webhook app against the trivial endpoint, no network.

    python -m benchmarks.request_cpu --database-url sqlite:///DB [--preset small] [--requests 20000] [--rounds 3]

Each app (``create_app`` for ``/authorize``, ``webhook_load.trivial_app`` for the baseline) is
called straight through ASGI with the realistic mix (``sample_checks``: about half refused, each
refusal an INFO audit line, written to /dev/null), metrics and the denial report on, in turn, for
``--rounds`` rounds. It prints CPU microseconds per review (``time.process_time``: what a
CPU-bound worker spends, which a machine shared with other work disturbs far less than req/s) and
the webhook's share of the trivial endpoint's reviews per CPU-second. HTTP parsing and the socket
(uvicorn, httptools, uvloop) are left out: both pay them alike, ``webhook_load`` measures them.
``--profile`` prints the webhook's cProfile instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from app.graph.database import resolve_url
from app.telemetry.logs import configure_logging
from app.web.app import create_app
from app.web.settings import Settings
from benchmarks.shapes import PRESETS, sample_checks
from benchmarks.webhook_load import review, trivial_app

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


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
    app: Asgi, bodies: list[bytes], n: int, profile: cProfile.Profile | None = None
) -> float:
    for body in bodies * 10:  # warm caches and connections
        assert await call(app, body) == 200
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for i in range(n):
        await call(app, bodies[i % len(bodies)])
    if profile is not None:
        profile.disable()
    return (time.process_time() - started) / n * 1e6


async def run(args: argparse.Namespace) -> None:
    checks = sample_checks(PRESETS[args.preset], args.seed)
    bodies = [
        orjson.dumps(review({"node": c.node, "kind": c.kind, "namespace": c.namespace, "name": c.name}))
        for c in checks
    ]
    webhook = create_app(Settings(database_url=resolve_url(args.database_url)))
    trivial = trivial_app()
    async with webhook.router.lifespan_context(webhook):
        if args.profile:
            profile = cProfile.Profile()
            await cpu_per_review(webhook, bodies, args.requests, profile)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            print(out.getvalue())
            return
        print(
            f"CPU per review, in-process, {args.requests} reviews per point, realistic mix ({len(bodies)} checks)"
        )
        shares = []
        for n in range(args.rounds):
            base = await cpu_per_review(trivial, bodies, args.requests)
            hook = await cpu_per_review(webhook, bodies, args.requests)
            shares.append(base / hook)
            print(
                f"round {n + 1}: trivial {base:6.1f} us  webhook {hook:6.1f} us  webhook share {base / hook:.1%}"
            )
        print(
            f"webhook reviews per CPU-second: {statistics.median(shares):.1%} of trivial (median of {args.rounds})"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.request_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a loaded graph (e.g. check_cost --load)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="whose sample checks to send")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile the webhook instead")
    args = p.parse_args(argv)
    with open(os.devnull, "w") as devnull:
        configure_logging("INFO", "text", stream=devnull)  # the audit lines are formatted and written
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
