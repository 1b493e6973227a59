"""``nodeauthz serve`` (the image's default command) takes no traffic before a writer has listed the cluster.

Real processes: the console script's ``serve``, then a real ``nodeauthz sync`` against a fake API
server, on both databases.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.builders import node, pod
from tests.fake_apiserver import FakeApiServer
from tests.servers import free_port, nodeauthz_script, stop, wait_listening, wait_ready


def readyz(base: str) -> tuple[int, dict[str, Any]]:
    resp = httpx.get(f"{base}/readyz", timeout=5)
    return resp.status_code, resp.json()


def start_serve(url: str, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [nodeauthz_script(), "--database-url", url, "serve", "--port", str(port), *extra],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_listening(base, proc, log)
    return proc, base


def test_serve_is_unready_until_a_writer_has_listed_the_cluster(database_url: str, tmp_path: Path) -> None:
    serve, base = start_serve(database_url, tmp_path / "serve.log")
    try:
        time.sleep(1)  # no writer will come by itself: it stays unready, not just "not yet"
        status, body = readyz(base)
        assert status == 503 and body["ready"] is False
        assert body["checks"]["database"] == "ok" and body["checks"]["schema"] == "ok"
        assert body["checks"]["sync_state"].startswith(
            "never synced: no writer has completed an initial list of pods, nodes, persistentvolumes, "
            "volumeattachments in this database"
        )
        with FakeApiServer() as api:
            api.create("nodes", node("n1"))
            api.create("pods", pod("web", "shop", "n1", secrets=("tls",)))
            kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
            sync = subprocess.Popen(
                [nodeauthz_script(), "--database-url", database_url, "sync", "--kubeconfig", str(kubeconfig)],
                stdout=(tmp_path / "sync.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                wait_ready(base, sync, tmp_path / "sync.log")
                status, body = readyz(base)
                assert body["checks"]["sync_state"] == "ok" and body["checks"]["writer_lease"] == "ok"
            finally:
                stop(sync)
    finally:
        stop(serve)


def test_serve_told_to_require_nothing_is_ready_on_a_never_synced_graph(
    database_url: str, tmp_path: Path
) -> None:
    """The explicit opt-out (an offline graph filled by `nodeauthz load`): database and schema only."""
    serve, base = start_serve(database_url, tmp_path / "serve.log", "--require-synced", "none")
    try:
        assert readyz(base) == (200, {"ready": True, "checks": {"database": "ok", "schema": "ok"}})
    finally:
        stop(serve)


def test_an_unknown_required_resource_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/graph.db"
    for argv, env in (
        (["serve", "--require-synced", "pods,secrets"], {}),
        (["serve"], {"NODEAUTHZ_REQUIRE_SYNCED": "pods,secrets"}),
    ):
        out = subprocess.run(
            [nodeauthz_script(), "--database-url", url, *argv],
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env},
        )  # fmt: skip
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.splitlines()[-1] == (
            "nodeauthz: error: --require-synced / NODEAUTHZ_REQUIRE_SYNCED: unknown resource secrets; "
            "expected none or some of pods,nodes,persistentvolumes,volumeattachments,resourceslices,"
            "podcertificaterequests,serviceaccounts,persistentvolumeclaims,csidrivers"
        )
