"""Idle and trickling clients (slowloris) against a real ``nodeauthz serve``: closed after the deadline,
the connection limit holds, and real requests are answered throughout or right after.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, nodeauthz_script, stop, wait_listening

READ_TIMEOUT_S = 2
KEEP_ALIVE_S = 3
LIMIT = 40
GET = b"GET /healthz HTTP/1.1\r\nHost: nodeauthz\r\n\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    url = f"sqlite:///{tmp_path}/graph.db"
    subprocess.run([nodeauthz_script(), "--database-url", url, "migrate"], check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [nodeauthz_script(), "--database-url", url, "serve", "--port", str(port), "--require-synced", "none",
         "--request-read-timeout", str(READ_TIMEOUT_S), "--keep-alive-timeout", str(KEEP_ALIVE_S),
         "--limit-concurrency", str(LIMIT)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_listening(base, proc, log)
    try:
        yield base, port, proc
    finally:
        stop(proc)


def open_sockets(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        socks.append(s)
    return socks


def closed_by_peer(s: socket.socket) -> bool:
    """The server closed it: EOF or a reset (a pending read is never data: these clients sent no request)."""
    if not select.select([s], [], [], 0)[0]:
        return False
    try:
        return s.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def trickle(socks: list[socket.socket], data: bytes) -> None:
    for s in socks:
        try:
            s.send(data)
        except (BlockingIOError, ConnectionResetError, BrokenPipeError):
            pass  # closed by the server: seen by closed_by_peer


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_and_trickling_connections_are_closed_after_the_read_timeout(
    server: tuple[str, int, subprocess.Popen[bytes]],
) -> None:
    base, port, proc = server
    before = open_fds(proc.pid)
    idle = open_sockets(port, 150)
    trickling = open_sockets(port, 150)
    trickle(trickling, b"POST /authorize HTTP/1.1\r\nHost: nodeauthz\r\nX-Slow: ")
    started = time.monotonic()
    try:
        while open_fds(proc.pid) < before + 290:  # the server has accepted (nearly) all of them
            assert time.monotonic() - started < READ_TIMEOUT_S, open_fds(proc.pid) - before
            time.sleep(0.05)
        # Each trickling client sends a header byte twice a second: never idle, never finished.
        while time.monotonic() - started < READ_TIMEOUT_S + 5:
            trickle(trickling, b"a")
            time.sleep(0.5)
            if all(closed_by_peer(s) for s in idle + trickling):
                break
        elapsed = time.monotonic() - started
        still_open = sum(not closed_by_peer(s) for s in idle + trickling)
        assert still_open == 0, f"{still_open} of 300 slow connections still open after {elapsed:.1f}s"
        assert elapsed >= READ_TIMEOUT_S - 0.5  # closed by the deadline, not at once
        assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        time.sleep(0.5)
        assert open_fds(proc.pid) <= before + 5
    finally:
        for s in idle + trickling:
            s.close()


def test_the_connection_limit_answers_503_at_once_and_frees_up_after_the_timeout(
    server: tuple[str, int, subprocess.Popen[bytes]],
) -> None:
    base, port, proc = server
    idle = open_sockets(port, LIMIT * 3)
    try:
        time.sleep(0.3)
        started = time.monotonic()
        over = httpx.get(f"{base}/healthz", timeout=5)
        assert over.status_code == 503 and time.monotonic() - started < 1  # refused at once, never queued
        deadline = time.monotonic() + READ_TIMEOUT_S + 5
        while httpx.get(f"{base}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the idle connections were never closed"
            time.sleep(0.2)
    finally:
        for s in idle:
            s.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    server: tuple[str, int, subprocess.Popen[bytes]],
) -> None:
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(GET)
        response = b""
        while not response.endswith(b'{"status":"ok"}'):  # headers and body may come in two segments
            chunk = s.recv(4096)
            assert chunk, response
            response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(4096) == b""  # blocks until the server closes it
        waited = time.monotonic() - started
        # Not the read deadline (2 s): an idle keep-alive connection may stay for the keep-alive timeout.
        assert KEEP_ALIVE_S - 0.5 <= waited <= KEEP_ALIVE_S + 2, waited
