"""Slow and idle clients: every request must arrive whole within a deadline, or its connection is closed.

uvicorn's httptools protocol has a keep-alive timer (armed only after a response) and no
timer at all for a connection that never finishes sending a request: a client that
opens a socket and sends nothing, or trickles a header byte now and then (slowloris),
holds a connection and a file descriptor forever. ``GuardedHttpToolsProtocol`` adds one
timer: a new connection must deliver a complete request (request line, headers and body)
within ``--request-read-timeout`` seconds, and so must every later request on it, counted
from its first byte. Idle time between requests stays governed by uvicorn's keep-alive
timeout (``--keep-alive-timeout``), and uvicorn's ``limit_concurrency``
(``--limit-concurrency``) answers 503 at once beyond that many connections or requests per
worker. A TLS handshake that never completes is closed by the event loop after 60 s.

Worker processes read the timeout from the environment (``Settings.to_env``), as they do
every other setting: uvicorn builds its protocol objects from the class alone.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "NODEAUTHZ_REQUEST_READ_TIMEOUT"
DEFAULT_REQUEST_READ_TIMEOUT_S = 10.0


def request_read_timeout() -> float:
    """The deadline for a whole request to arrive (validated by ``Settings`` at start). Read per
    connection, not per request: connections are long-lived (keep-alive)."""
    return float(os.environ.get(READ_TIMEOUT_ENV) or DEFAULT_REQUEST_READ_TIMEOUT_S)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_deadline()  # the first request: from the moment the connection opens

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_deadline is None:  # a later request: from its first byte
            self._arm_read_deadline()

    def on_message_complete(self) -> None:
        self._cancel_read_deadline()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        super().connection_lost(exc)

    def _arm_read_deadline(self) -> None:
        self._cancel_read_deadline()
        self._read_deadline = self.loop.call_later(request_read_timeout(), self._read_deadline_passed)

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_deadline_passed(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
