"""``nodeauthz sync``: keep the graph fresh from the Kubernetes API, as the only writer (no lease)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from app.cli.errors import UsageError
from app.cli.options import add_kube_flags, database_url, parse_resources, require_schema
from app.graph.database import make_engine
from app.graph.migrations import upgrade
from app.graph.store import GraphStore
from app.sync.api_client import KubeApi
from app.sync.worker import SyncWorker
from app.web.metrics import exposition_registry

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="watch the Kubernetes API and keep the graph fresh (single writer, no lease)",
        description="List and watch pods, nodes, PVs, VolumeAttachments, ResourceSlices and "
        "PodCertificateRequests into the graph database until SIGTERM/SIGINT. Resumes from the "
        "stored resourceVersions; run only one writer per database (use `run` for HA).",
    )
    add_kube_flags(p)
    p.add_argument("--migrate", action="store_true", help="upgrade the schema to head first")
    p.add_argument(
        "--metrics-port", type=int, default=None,
        help="serve the writer's Prometheus metrics on this port at /metrics (default: not served)",
    )  # fmt: skip
    p.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    resources = parse_resources(args.resources)
    url = database_url(args)
    if args.migrate:
        upgrade(url)
    require_schema(url)
    if args.metrics_port is not None:
        serve_metrics(args.metrics_port)
    engine = make_engine(url)
    try:
        api = KubeApi.from_config(args.kubeconfig, args.context)
        worker = SyncWorker(GraphStore(engine, writer="nodeauthz-sync"), api, resources=resources)
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            worker.run(stop)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            api.close()
        return 0
    finally:
        engine.dispose()


def serve_metrics(port: int) -> None:
    """``/metrics`` of this process on ``port`` (all interfaces), from a daemon thread."""
    from prometheus_client import start_http_server

    if not 0 < port < 65536:
        raise UsageError(f"--metrics-port {port} is out of range")
    try:
        start_http_server(port, registry=exposition_registry())
    except OSError as exc:
        raise UsageError(f"--metrics-port {port}: {exc.strerror or exc}") from None
