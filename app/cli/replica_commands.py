"""``nodeauthz run``: one deployment replica (webhook + leader-elected sync worker)."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.graph_commands import require_schema
from app.cli.webhook_commands import health_flag
from app.graph.database import resolve_url
from app.sync.api_client import RESOURCE_NAMES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="one deployment replica: the webhook plus a sync worker that writes only while it holds the lease",
        description="Serve /authorize, /admit, /healthz and /readyz, and take part in electing the one writer "
        "that keeps the shared graph in sync with the Kubernetes API. Start several on one database for HA.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--authorize-with-selectors", default=None, metavar="true|false")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA (production)")
    p.add_argument("--workers", type=int, default=1, help="webhook worker processes (default 1)")
    health_flag(p)
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--context", default=None)
    p.add_argument("--resources", default=",".join(RESOURCE_NAMES), help="comma-separated resources to sync")
    p.add_argument("--lease-duration", type=float, default=15.0, help="writer lease, seconds (default 15)")
    p.add_argument("--holder", default=None, help="this replica's lease identity (default host-pid-random)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from app.cli.main import UsageError
    from app.cli.sync_commands import parse_resources
    from app.ha.lease import unique_holder
    from app.replica.processes import WriterOptions, required_resources, run_replica
    from app.web.settings import Settings, parse_bool

    resources = parse_resources(args.resources)
    if args.lease_duration < 3:
        raise UsageError("--lease-duration must be at least 3 seconds")
    url = resolve_url(args.database_url)
    require_schema(url)
    try:
        settings = Settings.from_env(
            database_url=url,
            host=args.host,
            port=args.port,
            authorize_with_selectors=None
            if args.authorize_with_selectors is None
            else parse_bool(args.authorize_with_selectors),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            log_level=args.log_level,
            require_synced=required_resources(resources),
            health_port=args.health_port,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    options = WriterOptions(
        database_url=url,
        holder=args.holder or unique_holder(),
        kubeconfig=args.kubeconfig,
        context=args.context,
        resources=tuple(resources),
        lease_duration=args.lease_duration,
        log_level=args.log_level,
    )
    return run_replica(settings, options, workers=args.workers)
