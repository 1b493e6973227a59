"""``nodeauthz sync``: the writer without the webhook (campaigns for the lease like ``run``'s writer)."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from app.cli.errors import UsageError
from app.cli.options import add_kube_flags, add_writer_flags, database_url, require_schema, writer_options
from app.graph.migrations import upgrade
from app.ha.elected_writer import ElectedWriter
from app.web.metrics import exposition_registry

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="watch the Kubernetes API and keep the graph fresh (a writer without the webhook)",
        description="List and watch pods, nodes, PVs, VolumeAttachments, ResourceSlices and "
        "PodCertificateRequests into the graph database until SIGTERM/SIGINT. Resumes from the "
        "stored resourceVersions. Writes only while it holds the writer lease, so it can run beside "
        "`run` replicas (one of them writes at a time).",
    )
    add_kube_flags(p)
    add_writer_flags(p)
    p.add_argument(
        "--migrate", action="store_true", help="upgrade the schema to head first (env NODEAUTHZ_MIGRATE)"
    )
    p.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve the writer's Prometheus metrics on this port at /metrics (default: not served; "
        "env NODEAUTHZ_METRICS_PORT)",
    )  # fmt: skip
    p.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    url = database_url(args)
    options = writer_options(args, url)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:  # before any database work
        raise UsageError(f"--metrics-port {args.metrics_port} is out of range")
    if args.migrate:
        upgrade(url)
    require_schema(url)
    if args.metrics_port is not None:
        serve_metrics(args.metrics_port)
    writer = ElectedWriter(options)

    previous = {s: signal.signal(s, writer.request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        writer.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def serve_metrics(port: int) -> None:
    """``/metrics`` of this process on ``port`` (all interfaces), from a daemon thread."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, registry=exposition_registry())
    except OSError as exc:
        raise UsageError(f"--metrics-port {port}: {exc.strerror or exc}") from None
