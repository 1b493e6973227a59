"""PostgreSQL servers of a test's own, for faults the shared server must never suffer (stalls,
a standby's lag, a promotion).

``initdb`` into a temporary directory owned by the postgres user, started on a free port, torn
down in a ``finally``; a hot standby of it with ``pg_basebackup -R``. The shared server at
127.0.0.1:5432 is never touched.
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
from typing import Any

import psycopg

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

    def pg_ctl(self, *args: str) -> None:
        _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), *args, cwd=self.root
        )

    def start(self) -> None:
        self.pg_ctl("-w", "start")

    def restart(self) -> None:
        """A fast restart: every open connection is cut, as a standby's pod restarting would."""
        self.pg_ctl("-w", "-m", "fast", "restart")

    def sql(self, statement: str, database: str = "postgres") -> Any:
        """One statement in autocommit; the first column of the first row."""
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}", autocommit=True
        ) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            row = cur.fetchone() if cur.description else None
        return row[0] if row else None

    def _stop_now(self) -> None:
        if (self.data / "postmaster.pid").exists():
            for pid in reversed(self._pids()):  # a test that failed mid-stall must not leave it frozen
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                 "stop"], cwd=self.root, capture_output=True, check=False,
            )  # fmt: skip


def _new_root(prefix: str) -> Path:
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found in {BIN}")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(root, "postgres", "postgres")
    return root


def _configure(server: OwnServer) -> None:
    with (server.data / "postgresql.conf").open("a") as conf:  # later lines win over copied ones
        conf.write(
            f"port = {server.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{server.root}'\nfsync = off\n"
            "wal_level = replica\nhot_standby = on\n"
        )


@contextmanager
def own_postgres() -> Iterator[OwnServer]:
    root = _new_root("nodeauthz-pg-")
    server = OwnServer(root, _free_port())
    try:
        _as_postgres(str(BIN / "initdb"), "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                     "--locale=C", "-N", cwd=root)  # fmt: skip
        _configure(server)  # initdb's pg_hba.conf trusts local replication connections too
        server.start()
        yield server
    finally:
        server._stop_now()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def own_standby(primary: OwnServer) -> Iterator[OwnServer]:
    """A hot standby streaming from ``primary`` (``pg_basebackup -R``), on a port of its own."""
    root = _new_root("nodeauthz-pg-standby-")
    server = OwnServer(root, _free_port())
    try:
        _as_postgres(str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                     "-D", str(server.data), "-R", "-X", "stream", "-c", "fast", "-N", cwd=root)  # fmt: skip
        (server.data / "postmaster.pid").unlink(missing_ok=True)
        _configure(server)
        server.start()
        yield server
    finally:
        server._stop_now()
        shutil.rmtree(root, ignore_errors=True)
