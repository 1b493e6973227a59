"""The webhook's TLS: certificates that rotate without a restart, and client certificates for client auth only.

cert-manager (or any rotation) replaces the serving certificate, its key and the client
CA bundle in place every 60-90 days; a Kubernetes secret volume swaps them atomically
through a symlink. The event loop's server keeps the one ``SSLContext`` it was given, so
that context never serves a certificate itself: its ``sni_callback`` (which OpenSSL runs
for every ClientHello, with or without a server name) points each NEW handshake at the
current context. A thread looks at the files every ``RELOAD_INTERVAL_S`` seconds (inode,
size, mtime: a symlink swap changes the inode) and, when they changed, builds a new context
from them. A context that cannot be built (a half-written file, a key that does not match)
is logged and the previous one kept; connections already open keep their session.

Client certificates (``--tls-client-ca``): the peer must present one signed by the CA, and
its extendedKeyUsage, when present, must include clientAuth: OpenSSL's server-side
verification checks the ``sslclient`` purpose, which refuses a serverAuth-only certificate
at the handshake ("unsupported certificate purpose"). A certificate without the extension
is valid for any purpose, as in Go's crypto/x509, which the API server itself uses.
``tests/web/test_tls.py`` pins both.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("nodeauthz.tls")
RELOAD_INTERVAL_S = 5.0

FileState = tuple[tuple[int, int, int] | None, ...]


def build_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """A server context from the files as they are now; raises OSError/ssl.SSLError if they are unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def tls_files_problem(cert: str, key: str, client_ca: str | None) -> str | None:
    """Why these files cannot serve TLS, naming the flag and the file; None when they can."""
    flags = [("--tls-cert", cert), ("--tls-key", key)] + (
        [("--tls-client-ca", client_ca)] if client_ca else []
    )
    for flag, path in flags:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"{flag} {path}: {exc.strerror or exc}"
    try:
        build_context(cert, key, client_ca)
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(f"{flag} {path}" for flag, path in flags)
        return f"cannot load {named}: {getattr(exc, 'reason', None) or exc}"
    return None


def _file_state(paths: tuple[str, ...]) -> FileState:
    states: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)  # follows the secret volume's symlinks
            states.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            states.append(None)
    return tuple(states)


class ReloadingContext:
    """Serves the newest usable certificate, key and client CA to each new handshake."""

    def __init__(self, cert: str, key: str, client_ca: str | None = None) -> None:
        self._paths = (cert, key, *([client_ca] if client_ca else []))
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._state = _file_state(self._paths)
        self.current = build_context(cert, key, client_ca)  # unusable at start: the caller reports it
        # The context the listener holds: same verification settings, and it hands every handshake on.
        self.listener = build_context(cert, key, client_ca)
        self.listener.sni_callback = self._select
        self._stop = threading.Event()

    def _select(self, ssl_object: Any, server_name: str | None, listener: ssl.SSLContext) -> None:
        current = self.current  # one read: the reload thread may replace it at any time
        if ssl_object.context is not current:
            ssl_object.context = current
        return None

    def reload_if_changed(self) -> bool:
        """Build a new context if the files changed since last looked at; True if it was swapped in."""
        state = _file_state(self._paths)
        if state == self._state:
            return False
        self._state = state  # a broken state is tried again only once the files change again
        try:
            context = build_context(self._cert, self._key, self._client_ca)
        except (OSError, ssl.SSLError) as exc:
            LOG.error(
                "TLS files changed but cannot be loaded (%s); still serving the previous certificate", exc
            )
            return False
        self.current = context
        LOG.info("TLS certificate, key and client CA reloaded from %s", ", ".join(self._paths))
        return True

    def watch(self, interval: float = RELOAD_INTERVAL_S) -> threading.Thread:
        """Look for changed files every ``interval`` seconds in a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload_if_changed()
                except Exception:  # noqa: BLE001 - never let the watcher die
                    LOG.exception("TLS reload check failed")

        thread = threading.Thread(target=loop, name="tls-reload", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def reloading_ssl_context(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: built in each worker process from the Config's TLS files."""
    reloading = ReloadingContext(str(config.ssl_certfile), str(config.ssl_keyfile), config.ssl_ca_certs)
    reloading.watch()
    return reloading.listener
