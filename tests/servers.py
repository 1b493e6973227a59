"""Waiting for a server the test started in a subprocess."""

from __future__ import annotations

import subprocess
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
