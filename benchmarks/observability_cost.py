"""CPU per review with metrics and the denial report on versus off, with no HTTP and no client.

    python -m benchmarks.observability_cost [--preset small] [--rounds 7] [--requests 4000]

The webhook app is called in this process as uvicorn would call it (an ASGI scope, the body, a send
that drops the answer), in four configurations side by side: off (the baseline), metrics only,
denial report only, both on (the default). Each round runs every configuration in turn over the
sample checks (about half refused: each refusal is an audit line and, when on, a denial), timed by
this process's CPU clock, so other load on the machine barely moves the figures (unlike req/s over
HTTP, ``webhook_load --observability compare``). Logging goes to /dev/null at INFO.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import orjson

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="nodeauthz-bench-metrics-"))

from app.web.app import create_app  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR, as serve does
from app.web.settings import Settings  # noqa: E402
from benchmarks.generate import generate  # noqa: E402
from benchmarks.shapes import PRESETS, sample_checks  # noqa: E402
from benchmarks.webhook_load import load_cluster, review  # noqa: E402

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "off (baseline)": {"metrics": False, "denial_report": False},
    "metrics only": {"denial_report": False},
    "denial report only": {"metrics": False},
    "both on (default)": {},
}


async def call(app: Any, body: bytes) -> None:
    scope = {
        "type": "http", "method": "POST", "path": "/authorize", "query_string": b"", "root_path": "",
        "headers": [(b"content-length", str(len(body)).encode())], "http_version": "1.1",
        "scheme": "http", "server": ("127.0.0.1", 8443), "client": ("127.0.0.1", 40000),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(scope, receive, send)


async def measure(url: str, bodies: list[bytes], rounds: int, requests: int) -> dict[str, list[float]]:
    apps, lifespans = {}, []
    for name, overrides in CONFIGURATIONS.items():
        app = create_app(Settings(database_url=url, **overrides))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        apps[name] = app
        lifespans.append(lifespan)
    cpu_us: dict[str, list[float]] = {name: [] for name in apps}
    for n in range(rounds):
        for name in list(apps) if n % 2 == 0 else list(apps)[::-1]:
            started = time.process_time()
            for i in range(requests):
                await call(apps[name], bodies[i % len(bodies)])
            cpu_us[name].append((time.process_time() - started) / requests * 1e6)
    for lifespan in lifespans:
        await lifespan.__aexit__(None, None, None)
    return cpu_us


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.observability_cost", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=4000, help="reviews per configuration per round")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115 - for the run
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        load_cluster(url, generate(PRESETS[args.preset], args.seed))
        bodies = [orjson.dumps(review(c._asdict())) for c in sample_checks(PRESETS[args.preset], args.seed)]
        cpu_us = uvloop.run(measure(url, bodies, args.rounds, args.requests))
    base = statistics.median(cpu_us["off (baseline)"])
    print(
        f"cores: {os.cpu_count()}; {len(bodies)} distinct checks; {args.rounds} rounds x {args.requests} reviews"
    )
    print(f"{'configuration':<22} {'CPU us/review':>14} {'vs off':>8}   rounds")
    for name, values in cpu_us.items():
        median = statistics.median(values)
        print(f"{name:<22} {median:>14.1f} {median / base:>8.1%}   {' '.join(f'{v:.1f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
