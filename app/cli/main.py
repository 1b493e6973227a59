"""The ``nodeauthz`` command: parse, dispatch, and turn failures into one line and an exit code.

Each command family module exposes ``register(subparsers)``, adding its
commands with ``set_defaults(func=...)``; a command function takes the parsed
arguments and returns the process exit code (0 ok / allowed, 1 "no", 2 usage
or command error). Command functions are thin: the work is done by plain
functions of the layers below.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from app import __version__
from app.cli import (
    admission_commands,
    denial_commands,
    graph_commands,
    replica_commands,
    sync_commands,
    webhook_commands,
)
from app.cli.env_flags import GLOBAL, apply_env_defaults
from app.cli.errors import CommandError, UsageError
from app.graph.database import URL_ENV
from app.graph.migrations import head_revision
from app.telemetry.logs import LOG_FORMAT_ENV, LOG_FORMATS, configure_logging

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_ENV = "NODEAUTHZ_LOG_LEVEL"

# Command families, in the order `nodeauthz --help` lists them.
FAMILIES = (
    graph_commands,
    webhook_commands,
    sync_commands,
    replica_commands,
    admission_commands,
    denial_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeauthz",
        description="The Kubernetes Node authorizer and NodeRestriction over a persistent, shared SQL graph.",
    )
    parser.add_argument(
        "--version", action="version", version=f"nodeauthz {__version__} (schema revision {head_revision()})"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"SQLAlchemy URL (env {URL_ENV}; default sqlite:///nodeauthz.db)",
    )
    parser.add_argument(
        "--log-level", default=None, type=str.upper, choices=LOG_LEVELS,
        help=f"{', '.join(LOG_LEVELS)} (default INFO; env {LOG_LEVEL_ENV})",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None,
        help=f"text (default) or json: one JSON object per line (env {LOG_FORMAT_ENV})",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for family in FAMILIES:
        family.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    env_problems = apply_env_defaults(parser, os.environ)
    args = parser.parse_args(argv)
    if problems := env_problems.get(GLOBAL, []) + env_problems.get(args.command, []):
        print(f"nodeauthz: error: {problems[0]}", file=sys.stderr)
        return 2
    args.log_level = args.log_level or os.environ.get(LOG_LEVEL_ENV, "").upper() or "INFO"
    if args.log_level not in LOG_LEVELS:
        parser.print_usage(sys.stderr)
        print(f"nodeauthz: error: {LOG_LEVEL_ENV}: expected one of {', '.join(LOG_LEVELS)}", file=sys.stderr)
        return 2
    args.log_format = args.log_format or os.environ.get(LOG_FORMAT_ENV) or "text"
    if args.log_format not in LOG_FORMATS:
        parser.print_usage(sys.stderr)
        print(
            f"nodeauthz: error: {LOG_FORMAT_ENV}: expected one of {', '.join(LOG_FORMATS)}", file=sys.stderr
        )
        return 2
    configure_logging(str(args.log_level), args.log_format)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"nodeauthz: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"nodeauthz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
