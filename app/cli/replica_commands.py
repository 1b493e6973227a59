"""``nodeauthz run``: one deployment replica (webhook + leader-elected sync worker)."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.errors import UsageError
from app.cli.options import (
    add_kube_flags,
    add_serving_flags,
    database_url,
    parse_resources,
    require_schema,
    settings_from_args,
)
from app.ha.elected_writer import WriterOptions
from app.ha.lease import unique_holder
from app.ha.readiness import required_resources
from app.replica.processes import run_replica


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="one deployment replica: the webhook plus a sync worker that writes only while it holds the lease",
        description="Serve /authorize, /admit, /healthz and /readyz, and take part in electing the one writer "
        "that keeps the shared graph in sync with the Kubernetes API. Start several on one database for HA.",
    )
    add_serving_flags(p)
    add_kube_flags(p)
    p.add_argument("--lease-duration", type=float, default=15.0, help="writer lease, seconds (default 15)")
    p.add_argument("--holder", default=None, help="this replica's lease identity (default host-pid-random)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    resources = parse_resources(args.resources)
    if args.lease_duration < 3:
        raise UsageError("--lease-duration must be at least 3 seconds")
    url = database_url(args)
    require_schema(url)
    settings = settings_from_args(args, database_url=url, require_synced=required_resources(resources))
    options = WriterOptions(
        database_url=url,
        holder=args.holder or unique_holder(),
        kubeconfig=args.kubeconfig,
        context=args.context,
        resources=tuple(resources),
        lease_duration=args.lease_duration,
        log_level=args.log_level,
        log_format=settings.log_format,
    )
    return run_replica(settings, options)
