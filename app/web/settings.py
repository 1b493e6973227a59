"""Serving settings: one frozen value built from flags, else environment, else defaults.

``nodeauthz serve`` passes its settings to uvicorn workers through the
environment (``to_env``/``from_env``), so a worker process sees exactly what
the command line said.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from app.graph.database import URL_ENV, resolve_url
from app.graph.readers import DEFAULT_POOL_SIZE

ENV_PREFIX = "NODEAUTHZ_"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Settings:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8443
    # The AuthorizeNodeWithSelectors gate (on in Kubernetes 1.34).
    authorize_with_selectors: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    # When set, clients (the API server) must present a certificate signed by it.
    tls_client_ca: str | None = None
    pool_size: int = DEFAULT_POOL_SIZE
    log_level: str = "INFO"
    # A plain-HTTP listener for /healthz and /readyz only: kubelet probes cannot present the client
    # certificate that --tls-client-ca requires on the main port.
    health_port: int | None = None
    # Resources whose sync state /readyz requires (``nodeauthz run``); empty: schema and database only.
    require_synced: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        if self.pool_size < 1:
            raise ValueError("pool size must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.health_port is not None and not (0 < self.health_port < 65536 and self.health_port != self.port):
            raise ValueError(f"health port {self.health_port} must be a free port other than {self.port}")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` return these settings."""
        env = {
            URL_ENV: self.database_url,
            f"{ENV_PREFIX}HOST": self.host,
            f"{ENV_PREFIX}PORT": str(self.port),
            f"{ENV_PREFIX}AUTHORIZE_WITH_SELECTORS": str(self.authorize_with_selectors).lower(),
            f"{ENV_PREFIX}POOL_SIZE": str(self.pool_size),
            f"{ENV_PREFIX}LOG_LEVEL": self.log_level,
        }
        if self.require_synced:
            env[f"{ENV_PREFIX}REQUIRE_SYNCED"] = ",".join(self.require_synced)
        if self.health_port:
            env[f"{ENV_PREFIX}HEALTH_PORT"] = str(self.health_port)
        for key, value in (("TLS_CERT", self.tls_cert), ("TLS_KEY", self.tls_key),
                           ("TLS_CLIENT_CA", self.tls_client_ca)):
            if value:
                env[f"{ENV_PREFIX}{key}"] = value
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``NODEAUTHZ_*`` variables; keyword overrides that are not None win."""
        env = os.environ if env is None else env

        def get(key: str) -> str | None:
            return env.get(f"{ENV_PREFIX}{key}") or None

        values: dict[str, object] = {"database_url": resolve_url(env.get(URL_ENV) or None)}
        if (host := get("HOST")) is not None:
            values["host"] = host
        if (port := get("PORT")) is not None:
            values["port"] = int(port)
        if (selectors := get("AUTHORIZE_WITH_SELECTORS")) is not None:
            values["authorize_with_selectors"] = parse_bool(selectors)
        if (pool := get("POOL_SIZE")) is not None:
            values["pool_size"] = int(pool)
        if (level := get("LOG_LEVEL")) is not None:
            values["log_level"] = level
        if (health := get("HEALTH_PORT")) is not None:
            values["health_port"] = int(health)
        if (synced := get("REQUIRE_SYNCED")) is not None:
            values["require_synced"] = tuple(r for r in synced.split(",") if r)
        for key in ("TLS_CERT", "TLS_KEY", "TLS_CLIENT_CA"):
            if (path := get(key)) is not None:
                values[key.lower()] = path
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "database_url" in overrides and overrides["database_url"] is not None:
            values["database_url"] = resolve_url(str(overrides["database_url"]))
        return cls(**values)  # type: ignore[arg-type]
