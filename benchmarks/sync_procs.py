"""The processes the sync benchmark measures: ``nodeauthz sync`` and ``nodeauthz run`` as subprocesses.

Each runs in its own session so that stopping it also stops the writer child of
``run``; logs go to files the benchmark reads back (freshness lines) and shows
on failure.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

FRESHNESS = re.compile(
    r"freshness: event arrival -> commit over (\d+) events: p50 ([\d.]+) ms, p99 ([\d.]+) ms"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water resident set (VmHWM), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Proc:
    """A ``python -m app`` subprocess with its log file."""

    def __init__(self, args: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole session if it does not end in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers (the writer child) too
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        self._log_file.close()
        return self.popen.returncode

    def first_log(self, needle: str) -> float | None:
        """Seconds from start to the first log line containing ``needle`` (logging's default asctime)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if needle in line:
                try:
                    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                return stamp - self.started_wall
        return None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_sync(url: str, kubeconfig: Path, resources: str, log: Path, list_children: int = 1) -> Proc:
    args = ["--database-url", url, "sync", "--kubeconfig", str(kubeconfig), "--resources", resources]
    return Proc([*args, "--list-children", str(list_children)], log)


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(c) for c in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def reaped_children_cpu(pid: int) -> float:
    """User + system CPU time of the children ``pid`` has waited for (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


class Replica(Proc):
    """``nodeauthz run`` on a free port: webhook in this process, leader-elected writer in a child."""

    def __init__(
        self,
        url: str,
        kubeconfig: Path,
        resources: str,
        holder: str,
        log: Path,
        freshness_interval: float | None = None,
    ) -> None:
        self.port = free_port()
        self.holder = holder
        env = {"NODEAUTHZ_FRESHNESS_LOG_INTERVAL": str(freshness_interval)} if freshness_interval else {}
        super().__init__(
            [
                "--database-url",
                url,
                "run",
                "--port",
                str(self.port),
                "--kubeconfig",
                str(kubeconfig),
                "--resources",
                resources,
                "--holder",
                holder,
            ],
            log,
            env,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def ready(self) -> bool:
        try:
            return self.client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float, interval: float = 0.01) -> float:
        """Seconds from process start until /readyz said 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.holder} exited early:\n{self.tail()}")
            if self.ready():
                return time.monotonic() - self.started
            time.sleep(interval)
        raise RuntimeError(f"{self.holder} not ready after {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        self.client.close()
        return super().stop(timeout)

    def freshness(self) -> tuple[int, float, float] | None:
        """The writer's last logged (events, p50 ms, p99 ms), if it logged one."""
        found = FRESHNESS.findall(self.log.read_text(errors="replace"))
        if not found:
            return None
        events, p50, p99 = found[-1]
        return int(events), float(p50), float(p99)


def review(node: str, namespace: str, secret: str) -> dict[str, Any]:
    """A SubjectAccessReview: may ``node`` get this secret?"""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {
            "user": f"system:node:{node}",
            "groups": ["system:nodes", "system:authenticated"],
            "resourceAttributes": {
                "verb": "get",
                "version": "v1",
                "resource": "secrets",
                "namespace": namespace,
                "name": secret,
            },
        },
    }


def allowed(client: httpx.Client, body: Mapping[str, Any]) -> bool:
    resp = client.post("/authorize", json=body)
    resp.raise_for_status()
    return bool(resp.json()["status"]["allowed"])
