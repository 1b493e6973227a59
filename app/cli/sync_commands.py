"""``nodeauthz sync``: keep the graph fresh from the Kubernetes API, as the only writer (no lease)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from app.graph.database import make_engine, resolve_url
from app.graph.migrations import current_revision, head_revision, upgrade
from app.graph.store import GraphStore
from app.sync.api_client import RESOURCE_NAMES, KubeApi

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="watch the Kubernetes API and keep the graph fresh (single writer, no lease)",
        description="List and watch pods, nodes, PVs, VolumeAttachments, ResourceSlices and "
        "PodCertificateRequests into the graph database until SIGTERM/SIGINT. Resumes from the "
        "stored resourceVersions; run only one writer per database (use `run` for HA).",
    )
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, in-cluster, ~/.kube/config)")
    p.add_argument("--context", default=None, help="kubeconfig context (default the current one)")
    p.add_argument("--resources", default=",".join(RESOURCE_NAMES),
                   help=f"comma-separated subset of: {','.join(RESOURCE_NAMES)}")
    p.add_argument("--migrate", action="store_true", help="upgrade the schema to head first")
    p.set_defaults(func=cmd_sync)


def parse_resources(text: str) -> list[str]:
    from app.cli.main import UsageError

    names = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in RESOURCE_NAMES]
    if unknown or not names:
        raise UsageError(f"--resources: unknown {', '.join(unknown) or '(empty)'}; expected {','.join(RESOURCE_NAMES)}")
    return list(dict.fromkeys(names))


def cmd_sync(args: argparse.Namespace) -> int:
    from app.sync.worker import SyncWorker

    resources = parse_resources(args.resources)
    url = resolve_url(args.database_url)
    if args.migrate:
        upgrade(url)
    engine = make_engine(url)
    try:
        current, head = current_revision(engine), head_revision()
        if current != head:
            print(
                f"nodeauthz sync: the database schema is at {current or 'no revision'}, this version needs "
                f"{head}; run `nodeauthz migrate` or pass --migrate",
                file=sys.stderr,
            )
            return 1
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
