"""Flags and checks shared by several commands, declared once."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError

from app.cli.errors import CommandError, UsageError
from app.graph.database import URL_ENV, make_read_engine, resolve_url
from app.graph.dialects import for_url
from app.graph.dialects.sqlite import sqlite_path
from app.graph.migrations import (
    SchemaNotCurrent,
    current_revision,
    known_revisions,
    require_current_schema,
    schema_problem,
)
from app.ha.elected_writer import WriterOptions
from app.ha.lease_record import unique_holder
from app.k8s.feature_gates import (
    AUTHORIZE_NODE_WITH_SELECTORS,
    NEWEST_RELEASE,
    FeatureGateError,
    FeatureGates,
    describe_gates,
    parse_feature_gates,
)
from app.k8s.watched_resources import RESOURCE_NAMES
from app.web.access_reviews import KubeconfigError, SubjectAccessReviewer, load_target
from app.web.settings import Settings, parse_bool
from app.web.tls import tls_files_problem


def database_url(args: argparse.Namespace) -> str:
    """The command's database URL (flag, env, default), refused (exit 2) unless nodeauthz can use it."""
    try:
        url = resolve_url(args.database_url)
        dialect = for_url(url)
        if dialect.name == "sqlite":
            sqlite_path(url)  # a file: replicas and commands must share it
    except (ValueError, ArgumentError) as exc:
        raise UsageError(f"--database-url / {URL_ENV}: {exc}") from None
    return url


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


def newer_schema(url: str) -> tuple[str, str | None] | None:
    """(revision, problem) when the database is at a revision this code does not ship, else None."""
    try:
        engine = make_read_engine(url, pool_size=1)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
            if current is None or current in known_revisions():
                return None
            return current, schema_problem(conn)
    except DBAPIError:
        return None  # not there yet (a SQLite file migrate creates): the upgrade itself reports errors
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


def add_gates_flags(parser: argparse.ArgumentParser) -> None:
    """``--feature-gates`` and its deprecated predecessor, on every command that decides."""
    parser.add_argument(
        "--feature-gates", metavar="NAME=BOOL,...", default=None,
        help="upstream feature gates, as kube-apiserver takes them (env NODEAUTHZ_FEATURE_GATES); "
        f"unset gates take Kubernetes {NEWEST_RELEASE}'s defaults, listed below",
    )  # fmt: skip
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        f"feature gates (--feature-gates), with Kubernetes {NEWEST_RELEASE}'s defaults:\n{describe_gates()}"
    )
    parser.add_argument(
        "--authorize-with-selectors", metavar="true|false", default=None,
        help="deprecated: use --feature-gates AuthorizeNodeWithSelectors=BOOL",
    )  # fmt: skip


def feature_gates_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> FeatureGates | None:
    """The gates the flags set, on top of ``NODEAUTHZ_FEATURE_GATES``; None when no flag was given.

    ``--authorize-with-selectors`` still works for one release, with a warning;
    ``--feature-gates`` wins over it. Bad values fail with upstream's text.
    """
    text: str | None = getattr(args, "feature_gates", None)
    alias: str | None = getattr(args, "authorize_with_selectors", None)
    if text is None and alias is None:
        return None
    env = os.environ if env is None else env
    parts = [env.get(Settings.env_name("feature_gates"), "")]
    if alias is not None:
        print(
            "nodeauthz: warning: --authorize-with-selectors is deprecated and will be removed in the next "
            f"release; use --feature-gates {AUTHORIZE_NODE_WITH_SELECTORS}={alias}",
            file=sys.stderr,
        )
        try:
            parts.append(f"{AUTHORIZE_NODE_WITH_SELECTORS}={str(parse_bool(alias)).lower()}")
        except ValueError as exc:
            raise CommandError(f"--authorize-with-selectors: {exc}") from None
    parts.append(text or "")
    try:
        return parse_feature_gates(",".join(parts))
    except FeatureGateError as exc:
        raise CommandError(f"--feature-gates: {exc}") from None


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    """What ``serve`` and ``run`` both take: where and how the webhook listens."""
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1; env NODEAUTHZ_HOST)")
    parser.add_argument(
        "--port", type=int, default=None, help="listen port (default 8443; env NODEAUTHZ_PORT)"
    )
    add_gates_flags(parser)
    parser.add_argument(
        "--tls-cert", help="server certificate (PEM), reloaded when it changes; without it, plain HTTP "
        "(env NODEAUTHZ_TLS_CERT)",
    )  # fmt: skip
    parser.add_argument("--tls-key", help="server private key (PEM) (env NODEAUTHZ_TLS_KEY)")
    parser.add_argument(
        "--tls-client-ca",
        help="CA bundle; when given, clients must present a certificate it signed, usable for client auth "
        "(env NODEAUTHZ_TLS_CLIENT_CA)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="webhook worker processes (default 1; env NODEAUTHZ_WORKERS)",
    )
    parser.add_argument(
        "--pool-size", type=int, default=None,
        help="PostgreSQL reader connections per worker (default 10; env NODEAUTHZ_POOL_SIZE)",
    )  # fmt: skip
    parser.add_argument(
        "--health-port", type=int, default=None,
        help="also serve /healthz and /readyz (only) over plain HTTP on this port, for kubelet probes "
        "when --tls-client-ca makes the main port require client certificates (needs --workers 1; "
        "env NODEAUTHZ_HEALTH_PORT)",
    )  # fmt: skip
    parser.add_argument(
        "--check-timeout", type=float, default=None, metavar="SECONDS",
        help="how long a check, an admission lookup or /readyz may wait on the database before it answers "
        "no-opinion / refuses / not ready (default 1; env NODEAUTHZ_CHECK_TIMEOUT)",
    )  # fmt: skip
    parser.add_argument(
        "--request-read-timeout", type=float, default=None, metavar="SECONDS",
        help="a connection must deliver a whole request within this long of opening (or of the request's "
        "first byte), else it is closed: idle and trickling clients (default 10; env "
        "NODEAUTHZ_REQUEST_READ_TIMEOUT)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-alive-timeout", type=float, default=None, metavar="SECONDS",
        help="close a connection idle this long between requests (default 120; env NODEAUTHZ_KEEP_ALIVE_TIMEOUT)",
    )  # fmt: skip
    parser.add_argument(
        "--limit-concurrency", type=int, default=None, metavar="N",
        help="per worker: beyond N open connections or requests in progress, answer 503 at once "
        "(default 1000; env NODEAUTHZ_LIMIT_CONCURRENCY)",
    )  # fmt: skip
    parser.add_argument(
        "--max-writer-silence", type=float, default=None, metavar="SECONDS",
        help="run: how long replicas stay ready without a live writer, and trust the previous writer's "
        "sync marks after a handover (default 30; env NODEAUTHZ_MAX_WRITER_SILENCE)",
    )  # fmt: skip
    parser.add_argument(
        "--read-database-url", default=None, metavar="URL",
        help="PostgreSQL hot standby (or a service over several) that checks and admission look-ups read "
        "from; the writer, lease and migrations use --database-url (env NODEAUTHZ_READ_DATABASE_URL)",
    )  # fmt: skip
    parser.add_argument(
        "--max-read-lag", type=float, default=None, metavar="SECONDS",
        help="with --read-database-url: answers from a standby further behind the primary than this are "
        "refused (no-opinion) and /readyz fails (default 5; env NODEAUTHZ_MAX_READ_LAG)",
    )  # fmt: skip


def add_context_flag(parser: argparse.ArgumentParser) -> None:
    """The kubeconfig context, for the API server watched (``sync``/``run``) or asked (``serve``)."""
    parser.add_argument(
        "--context", default=None, help="kubeconfig context (default the current one; env NODEAUTHZ_CONTEXT)"
    )


def add_authorizer_flags(parser: argparse.ArgumentParser) -> None:
    """``serve``: the API server NodeRestriction sends SubjectAccessReviews to (``run`` has these already)."""
    parser.add_argument(
        "--kubeconfig", default=None,
        help="kubeconfig of the API server NodeRestriction asks with SubjectAccessReviews (env "
        "KUBECONFIG; else the pod's service account in a pod, ~/.kube/config)",
    )  # fmt: skip
    add_context_flag(parser)


def add_kube_flags(parser: argparse.ArgumentParser) -> None:
    """What ``sync`` and ``run`` both take: which API server, which resources."""
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (env KUBECONFIG, read by the Kubernetes client; else in-cluster, ~/.kube/config)",
    )
    add_context_flag(parser)
    parser.add_argument(
        "--resources", default=",".join(RESOURCE_NAMES),
        help=f"comma-separated subset of: {','.join(RESOURCE_NAMES)} (default all; env NODEAUTHZ_RESOURCES)",
    )  # fmt: skip


def add_writer_flags(parser: argparse.ArgumentParser) -> None:
    """What ``sync`` and ``run`` both take: how this process campaigns for the writer lease."""
    parser.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="writer lease, seconds (default 15; env NODEAUTHZ_LEASE_DURATION)",
    )
    parser.add_argument(
        "--holder",
        default=None,
        help="this writer's lease identity (default host-pid-random; env NODEAUTHZ_HOLDER)",
    )
    parser.add_argument(
        "--list-children",
        type=int,
        default=2,
        help="processes that may parse big lists beside the writer, on another core (0: none, every list "
        "is parsed in the writer; default 2; env NODEAUTHZ_LIST_CHILDREN)",
    )


def writer_options(args: argparse.Namespace, url: str) -> WriterOptions:
    if args.lease_duration < 3:
        raise UsageError("--lease-duration must be at least 3 seconds")
    if args.list_children < 0:
        raise UsageError("--list-children must be 0 or more")
    return WriterOptions(
        database_url=url,
        holder=args.holder or unique_holder(),
        kubeconfig=args.kubeconfig,
        context=args.context,
        resources=tuple(parse_resources(args.resources)),
        lease_duration=args.lease_duration,
        list_children=args.list_children,
        log_level=args.log_level,
        log_format=getattr(args, "log_format", None) or "text",
    )


def parse_resources(text: str) -> list[str]:
    names = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in names if r not in RESOURCE_NAMES]
    if unknown or not names:
        raise UsageError(
            f"--resources: unknown {', '.join(unknown) or '(empty)'}; expected {','.join(RESOURCE_NAMES)}"
        )
    return list(dict.fromkeys(names))


def settings_from_args(args: argparse.Namespace, *, check_kubeconfig: bool = True, **extra: Any) -> Settings:
    """Settings from the flags this command has, then the environment, then defaults.

    ``check_kubeconfig=False``: ``run``, whose writer child loads the same kubeconfig and fails the
    replica (exit 1) when it cannot, as it always has."""
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
            "check_timeout",
            "max_writer_silence",
            "read_database_url",
            "max_read_lag",
            "kubeconfig",
            "request_read_timeout",
            "keep_alive_timeout",
            "limit_concurrency",
        )
    }
    flags["context"] = getattr(args, "context", None)
    values: dict[str, Any] = {
        "database_url": database_url(args),
        "feature_gates": feature_gates_from_args(args),
        "log_level": args.log_level,
        "log_format": getattr(args, "log_format", None),
        **flags,
        **extra,
    }
    try:
        settings = Settings.from_env(**values)
    except FeatureGateError as exc:  # from NODEAUTHZ_FEATURE_GATES; the message names it
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if settings.tls_cert and settings.tls_key:  # before any process starts: one line naming the file
        if problem := tls_files_problem(settings.tls_cert, settings.tls_key, settings.tls_client_ca):
            raise CommandError(problem)
    if not check_kubeconfig:
        return settings
    try:  # a kubeconfig given but unusable stops the command here, not in a worker process
        target, _ = load_target(settings.kubeconfig, settings.context)
        SubjectAccessReviewer(target, settings.check_timeout)
    except KubeconfigError as exc:
        raise UsageError(f"--kubeconfig: {exc}") from None
    return settings
