"""A closed-loop HTTP/1.1 load client on raw asyncio streams (uvloop), run as its own process.

    python -m benchmarks.loadclient --port P --concurrency C --duration S --requests FILE

``FILE`` is JSON: a list of ``{"body": <SAR object>, "allowed": bool | null}``. Each
connection is kept alive and sends its next request as soon as the previous
answer arrives. Requests are encoded once up front and responses are only
scanned, never JSON-decoded, so the client spends its CPU on the socket; its own
CPU use is reported so a saturated client can be told from a saturated server.
Prints one JSON object: requests, seconds, latencies' percentiles, errors, client CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from typing import Any

import orjson
import uvloop

ALLOWED = b'"allowed":true'


def encode(path: str, host: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    host: str,
    port: int,
    requests: list[tuple[bytes, bool | None]],
    offset: int,
    stop: float,
    warm: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n, i = len(requests), offset
    try:
        while True:
            data, expected = requests[i % n]
            i += 1
            start = time.perf_counter()
            if start >= stop:
                return
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            end = time.perf_counter()
            if start < warm:
                continue
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
            elif expected is not None and (ALLOWED in body) != expected:
                errors.append(f"unexpected answer: {body[:200]!r}")
            latencies.append(end - start)
    finally:
        writer.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run(
    host: str,
    port: int,
    path: str,
    concurrency: int,
    duration: float,
    warmup: float,
    items: list[dict[str, Any]],
    verify: bool = True,
) -> dict[str, Any]:
    requests = [
        (encode(path, host, orjson.dumps(it["body"])), None if not verify else it.get("allowed"))
        for it in items
    ]
    latencies: list[float] = []
    errors: list[str] = []
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    now = time.perf_counter()
    warm, stop = now + warmup, now + warmup + duration
    await asyncio.gather(
        *(_connection(host, port, requests, k * 7, stop, warm, latencies, errors) for k in range(concurrency))
    )
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - warm
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "p999_ms": percentile(latencies, 0.999) * 1e3,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        # Over warm-up and measurement: a share near 1.0 means the client, not the server, limits.
        "client_cpu": cpu / (warmup + duration),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadclient")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/authorize")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--requests", required=True, help="JSON file: [{body, allowed}]")
    p.add_argument("--no-verify", action="store_true", help="do not compare answers with 'allowed'")
    args = p.parse_args(argv)
    with open(args.requests, "rb") as fp:
        items = orjson.loads(fp.read())
    result = uvloop.run(
        run(
            args.host,
            args.port,
            args.path,
            args.concurrency,
            args.duration,
            args.warmup,
            items,
            not args.no_verify,
        )
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
