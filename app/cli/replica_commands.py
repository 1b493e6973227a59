"""``nodeauthz run``: one deployment replica (webhook + leader-elected sync worker)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from app.cli.options import (
    add_kube_flags,
    add_serving_flags,
    add_writer_flags,
    database_url,
    require_schema,
    settings_from_args,
    writer_options,
)
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
    add_writer_flags(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    url = database_url(args)
    options = writer_options(args, url)
    # Flags first: a bad flag is reported without touching the database.
    settings = settings_from_args(args, check_kubeconfig=False, database_url=url)
    settings = dataclasses.replace(
        settings, require_synced=required_resources(options.resources, settings.feature_gates)
    )
    require_schema(url)
    return run_replica(settings, options)
