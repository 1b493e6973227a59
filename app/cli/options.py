"""Flags and checks shared by several commands, declared once."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from app.cli.errors import CommandError, UsageError
from app.graph.database import make_read_engine, resolve_url
from app.graph.migrations import SchemaNotCurrent, require_current_schema
from app.k8s.watched_resources import RESOURCE_NAMES
from app.web.settings import Settings, parse_bool


def database_url(args: argparse.Namespace) -> str:
    return resolve_url(args.database_url)


def require_schema(url: str) -> None:
    """Refuse (exit 2) to work on a database whose schema is not the one this code needs."""
    engine = make_read_engine(url, pool_size=1)
    try:
        require_current_schema(engine)
    except SchemaNotCurrent as exc:
        raise CommandError(str(exc)) from None
    except DBAPIError as exc:
        raise CommandError(
            f"cannot read the database: {first_line(exc.orig or exc)} "
            "(check --database-url; `nodeauthz migrate` creates and migrates a database)"
        ) from None
    finally:
        engine.dispose()


@contextmanager
def graph_connection(args: argparse.Namespace) -> Iterator[Connection]:
    """A read connection to the command's database, refused (exit 2) unless it is migrated."""
    url = database_url(args)
    require_schema(url)
    engine = make_read_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def add_selectors_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--authorize-with-selectors", metavar="true|false", default=None,
        help="the AuthorizeNodeWithSelectors gate (default true; env NODEAUTHZ_AUTHORIZE_WITH_SELECTORS)",
    )  # fmt: skip


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    """What ``serve`` and ``run`` both take: where and how the webhook listens."""
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default 8443)")
    add_selectors_flag(parser)
    parser.add_argument("--tls-cert", help="server certificate (PEM); without it, plain HTTP")
    parser.add_argument("--tls-key", help="server private key (PEM)")
    parser.add_argument(
        "--tls-client-ca", help="CA bundle; when given, clients must present a certificate it signed"
    )
    parser.add_argument("--workers", type=int, default=None, help="webhook worker processes (default 1)")
    parser.add_argument("--pool-size", type=int, default=None, help="PostgreSQL connections per worker")
    parser.add_argument(
        "--health-port", type=int, default=None,
        help="also serve /healthz and /readyz (only) over plain HTTP on this port, for kubelet probes "
        "when --tls-client-ca makes the main port require client certificates (needs --workers 1)",
    )  # fmt: skip


def add_kube_flags(parser: argparse.ArgumentParser) -> None:
    """What ``sync`` and ``run`` both take: which API server, which resources."""
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (default the current one)")
    parser.add_argument(
        "--resources", default=",".join(RESOURCE_NAMES),
        help=f"comma-separated subset of: {','.join(RESOURCE_NAMES)}",
    )  # fmt: skip


def parse_resources(text: str) -> list[str]:
    names = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in RESOURCE_NAMES]
    if unknown or not names:
        raise UsageError(
            f"--resources: unknown {', '.join(unknown) or '(empty)'}; expected {','.join(RESOURCE_NAMES)}"
        )
    return list(dict.fromkeys(names))


def _bool_flag(text: str | None) -> bool | None:
    if text is None:
        return None
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise UsageError(f"--authorize-with-selectors: {exc}") from None


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from the flags this command has, then the environment, then defaults."""
    flags = {
        name: getattr(args, name, None)
        for name in (
            "host",
            "port",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "workers",
            "pool_size",
            "health_port",
        )
    }
    values: dict[str, Any] = {
        "database_url": args.database_url,
        "authorize_with_selectors": _bool_flag(getattr(args, "authorize_with_selectors", None)),
        "log_level": args.log_level,
        "log_format": getattr(args, "log_format", None),
        **flags,
        **extra,
    }
    try:
        return Settings.from_env(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
