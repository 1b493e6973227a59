"""Waiting for a server the test started in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def wait_ready(
    base: str, proc: subprocess.Popen[Any], log: Path | None = None, timeout: float = 20.0
) -> None:
    """Until ``{base}/readyz`` answers 200; fails (with the log) if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        why = log.read_text() if log is not None and log.exists() else "server did not come up"
        assert time.monotonic() < deadline and proc.poll() is None, why
        time.sleep(0.1)


def nodeauthz_script() -> str:
    """The installed ``nodeauthz`` console script of this interpreter's environment, as operators run it."""
    script = Path(sys.executable).parent / "nodeauthz"
    assert script.exists(), f"{script} is missing: pip install -e . first"
    return str(script)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def wait_listening(base: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 20.0) -> None:
    """Until ``{base}/healthz`` answers at all (ready or not); fails with the log if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
