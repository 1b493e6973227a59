"""A PostgreSQL server of a test's own, for faults the shared server must never suffer (stalls).

``initdb`` into a temporary directory owned by the postgres user, started on a free port, torn
down in a ``finally``. The shared server at 127.0.0.1:5432 is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*argv: str, cwd: Path) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], cwd=cwd, check=True, capture_output=True)


class OwnServer:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pids(self) -> list[int]:
        """The postmaster, then its children (the order to stop them in)."""
        postmaster = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *(int(c) for c in children)]

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """The server frozen (SIGSTOP, as a VM pause or a stuck storage would); thawed on exit."""
        pids = self._pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in reversed(pids):
                os.kill(pid, signal.SIGCONT)


@contextmanager
def own_postgres() -> Iterator[OwnServer]:
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found in {BIN}")
    root = Path(tempfile.mkdtemp(prefix="nodeauthz-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = OwnServer(root, _free_port())
    try:
        _as_postgres(str(BIN / "initdb"), "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                     "--locale=C", "-N", cwd=root)  # fmt: skip
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {server.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nfsync = off\n"
            )
        _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(server.data), "-l", str(root / "log"), "-w", "start", cwd=root
        )
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            for pid in reversed(server._pids()):  # a test that failed mid-stall must not leave it frozen
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(server.data), "-m", "immediate",
                 "stop"], cwd=root, capture_output=True, check=False,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
