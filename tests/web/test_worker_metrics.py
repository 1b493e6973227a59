"""``nodeauthz serve --workers 2``: one scrape adds up both workers; logs are JSON lines, uvicorn's too.

Real processes: the command as an operator runs it, reviews over fresh connections (so the kernel
spreads them over both workers), and the multiprocess directory read file by file to show that both
workers did answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from app.graph.store import GraphStore
from tests.metrics import value
from tests.replica.test_replicas import eventually, free_port
from tests.web.test_authorize import load_sample, review

ALLOWED, REFUSED = 60, 40


@pytest.fixture
def server(database_url: str, store: GraphStore, tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    load_sample(store)
    port, metrics_dir, log = free_port(), tmp_path / "metrics", tmp_path / "serve.log"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "NODEAUTHZ_DENIAL_FLUSH_INTERVAL": "0.2",
    }
    args = [
        "--database-url",
        database_url,
        "--log-format",
        "json",
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        "--require-synced",
        "none",  # the sample is loaded, not synced by a writer
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", *args], env=env, stderr=out, stdout=out)
    try:
        eventually(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200, "ready"
        )
        yield port, metrics_dir, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post_reviews(port: int) -> None:
    bodies = [review(verb="get", resource="secrets", namespace="shop", name="web-tls")] * ALLOWED
    bodies += [review("node-c", verb="get", resource="secrets", namespace="shop", name="web-tls")] * REFUSED
    errors: list[BaseException] = []

    def send(part: list[dict[str, object]]) -> None:
        try:
            for body in part:  # a new connection per review: either worker may accept it
                httpx.post(f"http://127.0.0.1:{port}/authorize", json=body, timeout=10).raise_for_status()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(bodies[i::10],)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def decisions_by_process(metrics_dir: Path) -> dict[str, float]:
    """Authorize decisions each worker recorded, read from its own file."""
    per_pid: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.split("_")[-1]
        for key, val, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, sample, labels, _help = json.loads(key)
            if sample == "nodeauthz_decisions_total" and labels.get("webhook") == "authorize":
                per_pid[pid] = per_pid.get(pid, 0.0) + val
    return per_pid


def test_two_workers_are_added_up_on_every_scrape(server: tuple[int, Path, Path]) -> None:
    port, metrics_dir, _log = server
    post_reviews(port)

    # Each worker publishes what it counted once a second (app.web.decision_recorder).
    def published() -> dict[str, float] | None:
        counts = decisions_by_process(metrics_dir)
        return counts if sum(counts.values()) == ALLOWED + REFUSED else None

    per_pid = eventually(published, "both workers' counts in their files")
    assert len([n for n in per_pid.values() if n > 0]) == 2, per_pid  # both workers answered
    for _ in range(6):  # whichever worker answers the scrape, it reports both
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        allow = value(
            text, "nodeauthz_decisions_total", webhook="authorize", decision="allow", resource="secrets"
        )
        refuse = value(
            text, "nodeauthz_decisions_total", webhook="authorize", decision="no_opinion", resource="secrets"
        )
        assert (allow, refuse) == (ALLOWED, REFUSED)
        assert value(text, "nodeauthz_decision_duration_seconds_count", webhook="authorize") == 100


def test_logs_are_json_lines_with_the_denials_fields(server: tuple[int, Path, Path]) -> None:
    port, _dir, log = server
    post_reviews(port)
    denials = []

    def audit_lines() -> bool:
        denials.clear()
        for line in log.read_text().splitlines():
            doc = json.loads(line)  # every line, uvicorn's included, is one JSON object
            assert {"time", "level", "logger", "message"} <= doc.keys()
            if doc["logger"] == "nodeauthz.audit":
                denials.append(doc)
        return len(denials) == REFUSED

    eventually(audit_lines, "the audit lines")
    assert {d["logger"] for d in map(json.loads, log.read_text().splitlines())} >= {"uvicorn.error"}
    assert denials[0] | {"time": None} == {
        "time": None,
        "level": "INFO",
        "logger": "nodeauthz.audit",
        "message": denials[0]["message"],
        "node": "node-c",
        "decision": "deny",
        "user": "system:node:node-c",
        "verb": "get",
        "group": "",
        "resource": "secrets",
        "subresource": "",
        "namespace": "shop",
        "name": "web-tls",
        "reason": "no relationship found between node 'node-c' and this object",
    }
