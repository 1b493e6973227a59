"""SQLite files under faults: a deleted database is not served on, nor recreated; a read-only one recovers.

Real processes: ``nodeauthz serve`` and ``nodeauthz sync`` in subprocesses, the file changed under them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli.webhook_commands import load_sample_cluster, sample_review
from app.graph.database import make_read_engine
from app.graph.reach import has_path
from tests.builders import node, pod
from tests.fake_apiserver import FakeApiServer
from tests.web.test_stalls import serving


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def answer(base: str) -> dict[str, Any]:
    review = sample_review("node-a", "shop", "web-tls")
    status: dict[str, Any] = httpx.post(f"{base}/authorize", json=review, timeout=10).json()["status"]
    return status


def delete_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_deleted_database_is_not_served_nor_recreated(tmp_path: Path) -> None:
    path = tmp_path / "graph.db"
    url = f"sqlite:///{path}"
    load_sample_cluster(url)
    with serving(url, tmp_path / "serve.log") as base:
        assert answer(base)["allowed"] is True
        delete_database(path)
        eventually(lambda: answer(base)["allowed"] is False, "checks to stop answering from the deleted file")
        assert answer(base)["reason"].startswith("nodeauthz: graph check failed")
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
        assert not path.exists()  # never an empty database created at the path
        load_sample_cluster(url)  # the operator restores it (here: migrate and load again)
        eventually(lambda: answer(base)["allowed"] is True, "the restored database to be served")
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200


@pytest.fixture
def immutable() -> Iterator[Callable[[Path, bool], None]]:
    """chattr +i: as root, chmod 0444 does not stop a write; an immutable file does."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    changed: list[Path] = []

    def set_immutable(path: Path, on: bool) -> None:
        done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"this filesystem does not support chattr: {done.stderr.decode().strip()}")
        if on:
            changed.append(path)

    yield set_immutable
    for path in changed:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_writer_started_on_a_read_only_database_recovers(
    tmp_path: Path, immutable: Callable[[Path, bool], None]
) -> None:
    path = tmp_path / "graph.db"
    url = f"sqlite:///{path}"
    load_sample_cluster(url)
    with FakeApiServer() as server:
        server.create("nodes", node("n1"))
        server.create("pods", pod("web", "shop", "n1", secrets=("fresh",)))
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        immutable(path, True)
        log = tmp_path / "sync.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--database-url", url, "sync", "--kubeconfig", str(kubeconfig),
             "--lease-duration", "3"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        engine = make_read_engine(url)
        try:
            # it tries, and fails, to take the lease and write; a loaded machine starts it slowly
            eventually(lambda: "readonly" in log.read_text(), "the writer to report the read-only file", 60)
            assert proc.poll() is None, log.read_text()
            immutable(path, False)

            def synced() -> bool:
                with engine.connect() as conn:
                    return has_path(conn, "n1", "secret", "shop", "fresh").found

            eventually(synced, "the writer to write once the file is writable", timeout=30)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            engine.dispose()
