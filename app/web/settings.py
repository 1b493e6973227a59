"""Serving settings: one frozen value built from flags, else environment, else defaults.

Every field has one environment variable, ``NODEAUTHZ_<FIELD>`` (so
``database_url`` is ``NODEAUTHZ_DATABASE_URL``, as for every command).
``nodeauthz serve`` passes its settings to uvicorn workers through the
environment (``to_env``/``from_env``), so a worker process sees exactly what
the command line said. Both directions are derived from the fields, never
listed by hand.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.graph.database import resolve_url
from app.graph.readers import DEFAULT_READ_TIMEOUT_S
from app.graph.standby import DEFAULT_MAX_READ_LAG_S, check_read_url
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGates, parse_feature_gates
from app.k8s.watched_resources import RESOURCE_NAMES
from app.telemetry.logs import LOG_FORMATS
from app.web.connections import DEFAULT_REQUEST_READ_TIMEOUT_S

ENV_PREFIX = "NODEAUTHZ_"
DEFAULT_POOL_SIZE = 10  # PostgreSQL reader connections per worker
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


NONE = "none"  # an empty list, written out: an unset variable would mean "the default"


def parse_list(text: str) -> tuple[str, ...]:
    if text.strip().lower() == NONE:
        return ()
    return tuple(item for item in (part.strip() for part in text.split(",")) if item)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value) or NONE
    return str(value)  # FeatureGates: the --feature-gates text


@dataclass(frozen=True)
class Settings:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8443
    # Upstream feature gates (``--feature-gates``); unset ones take the newest release's defaults.
    feature_gates: FeatureGates = DEFAULT_GATES
    tls_cert: str | None = None
    tls_key: str | None = None
    # When set, clients (the API server) must present a certificate signed by it.
    tls_client_ca: str | None = None
    pool_size: int = DEFAULT_POOL_SIZE
    # How long a check, an admission lookup or a readiness probe may wait on the database before it
    # answers no-opinion / refuses / not-ready (the kube-apiserver gives a webhook a few seconds).
    check_timeout: float = DEFAULT_READ_TIMEOUT_S
    log_level: str = "INFO"
    # A plain-HTTP listener for /healthz and /readyz only: kubelet probes cannot present the client
    # certificate that --tls-client-ca requires on the main port.
    health_port: int | None = None
    # uvicorn worker processes (``--workers``); the probe listener needs exactly one.
    workers: int = 1
    # After a writer handover, how long replicas trust the previous writer's sync marks while the new
    # writer opens its watches (it re-marks each resource as soon as its watch is established).
    max_writer_silence: float = 30.0
    # Resources whose sync state /readyz requires (``run``: those it syncs; ``serve``: the core
    # resources, ``--require-synced``); empty: schema and database only.
    require_synced: tuple[str, ...] = ()
    log_format: str = "text"  # or json (app.telemetry.logs)
    # The API server NodeRestriction asks with SubjectAccessReviews (app.web.access_reviews): a
    # kubeconfig and its context; unset: $KUBECONFIG, the pod's service account, ~/.kube/config.
    kubeconfig: str | None = None
    context: str | None = None
    # Slow and idle clients (app.web.connections): a whole request must arrive within this many
    # seconds of the connection opening (or of its first byte); an idle keep-alive connection is
    # closed after keep_alive_timeout (longer than Go's 90 s idle timeout in the API server's
    # client, so the client closes first and never races a request onto a closing connection);
    # beyond limit_concurrency connections or requests per worker, requests are answered 503 at once.
    request_read_timeout: float = DEFAULT_REQUEST_READ_TIMEOUT_S
    keep_alive_timeout: float = 120.0
    limit_concurrency: int = 1000
    # Prometheus metrics of each decision (``/metrics`` is served either way).
    metrics: bool = True
    # The denial report: no-opinions for nodes, buffered in memory and added to the ``denials`` table.
    denial_report: bool = True
    denial_buffer_size: int = 10_000  # distinct refusals held between flushes; beyond it, dropped and counted
    denial_flush_interval: float = 5.0  # seconds
    denial_retention_hours: float = 168.0  # rows not seen for this long are deleted
    # PostgreSQL hot standby(s) that checks and admission look-ups read from (app.graph.standby); the
    # writer, the lease, migrations, readiness's sync state and the denial report stay on database_url.
    read_database_url: str | None = None
    # Beyond this many seconds behind the primary, a standby's answers are refused and /readyz fails.
    max_read_lag: float = DEFAULT_MAX_READ_LAG_S

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        if self.pool_size < 1:
            raise ValueError("--pool-size must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port {self.port} is out of range")
        if self.health_port is not None and not (
            0 < self.health_port < 65536 and self.health_port != self.port
        ):
            raise ValueError(f"--health-port {self.health_port} must be a free port other than {self.port}")
        if not 0 < self.check_timeout <= 10:
            raise ValueError("--check-timeout must be between 0 and 10 seconds")
        if self.max_writer_silence <= 0:
            raise ValueError("--max-writer-silence must be positive")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.health_port is not None and self.workers != 1:
            raise ValueError("--health-port needs --workers 1")
        if not 0 < self.request_read_timeout <= 300 or self.keep_alive_timeout <= 0:
            raise ValueError("--request-read-timeout must be in (0, 300] and --keep-alive-timeout positive")
        if self.limit_concurrency < 1:
            raise ValueError("--limit-concurrency must be at least 1")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")
        if self.read_database_url is not None:
            check_read_url(self.database_url, self.read_database_url)
        if not 0 < self.max_read_lag <= 3600:
            raise ValueError("max read lag must be between 0 and 3600 seconds")
        if unknown := [r for r in self.require_synced if r not in RESOURCE_NAMES]:
            raise ValueError(
                f"--require-synced / NODEAUTHZ_REQUIRE_SYNCED: unknown resource {', '.join(unknown)}; expected {NONE} or some of "
                f"{','.join(RESOURCE_NAMES)}"
            )
        for name in ("denial_buffer_size", "denial_flush_interval", "denial_retention_hours"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.env_name(name)} must be positive")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @staticmethod
    def env_name(field: str) -> str:
        return f"{ENV_PREFIX}{field.upper()}"

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` return these settings."""
        env: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and (text := _format(value)):
                env[self.env_name(f.name)] = text
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``NODEAUTHZ_*`` variables; keyword overrides that are not None win.

        Raises ValueError naming the variable when one cannot be parsed.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, parse in _PARSERS.items():
            text = env.get(cls.env_name(name)) or None
            if text is not None:
                try:
                    values[name] = parse(text)
                except ValueError as exc:  # keeps its class: a FeatureGateError stays one
                    raise type(exc)(f"{cls.env_name(name)}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["database_url"] = resolve_url(
            str(values["database_url"]) if "database_url" in values else None
        )
        if values.get("read_database_url"):
            values["read_database_url"] = resolve_url(str(values["read_database_url"]))
        return cls(**values)  # type: ignore[arg-type]


def _parser(annotation: Any) -> Callable[[str], object]:
    """How to read a field of this type from its environment variable."""
    if isinstance(annotation, types.UnionType):  # ``X | None``: parse as X
        (annotation,) = set(typing.get_args(annotation)) - {type(None)}
    if annotation is bool:
        return parse_bool
    if annotation is int:
        return int
    if annotation is float:
        return float
    if annotation is FeatureGates:
        return parse_feature_gates
    if typing.get_origin(annotation) is tuple:
        return parse_list
    return str


_PARSERS: dict[str, Callable[[str], object]] = {
    name: _parser(hint) for name, hint in typing.get_type_hints(Settings).items()
}
