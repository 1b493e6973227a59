"""Log lines as a log pipeline reads them: JSON objects with the request's fields; text that cannot be forged."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.graph.store import GraphStore
from app.telemetry.logs import configure_logging
from app.web.app import create_app
from app.web.settings import Settings
from tests.web.test_authorize import load_sample, review, status

FORGED = "node-c\n2026-01-01 00:00:00,000 INFO MainProcess nodeauthz.audit NODE ALLOW: 'node-c'"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger's setup, restored afterwards (pytest's capture handlers included)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def refuse_forged_node(database_url: str, store: GraphStore) -> None:
    load_sample(store)
    with TestClient(create_app(Settings(database_url=database_url, denial_report=False))) as client:
        body = review(FORGED, verb="get", resource="secrets", namespace="shop", name="web-tls")
        assert status(client, body)["allowed"] is False


def audit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "nodeauthz.audit" in line]


def test_json_lines_carry_the_request_fields(
    database_url: str, store: GraphStore, captured: io.StringIO
) -> None:
    configure_logging("INFO", "json", stream=captured)
    refuse_forged_node(database_url, store)
    (line,) = audit_lines(captured.getvalue())
    doc = json.loads(line)
    assert doc["logger"] == "nodeauthz.audit" and doc["level"] == "INFO" and doc["time"]
    assert {k: doc[k] for k in ("node", "verb", "resource", "namespace", "name", "decision")} == {
        "node": FORGED,
        "verb": "get",
        "resource": "secrets",
        "namespace": "shop",
        "name": "web-tls",
        "decision": "deny",
    }
    assert doc["reason"].startswith("no relationship found between node")
    assert doc["message"].startswith("NODE DENY: ")


def test_a_newline_in_a_node_name_cannot_forge_a_text_line(
    database_url: str, store: GraphStore, captured: io.StringIO
) -> None:
    configure_logging("INFO", "text", stream=captured)
    refuse_forged_node(database_url, store)
    lines = audit_lines(captured.getvalue())
    assert len(lines) == 1 and "NODE ALLOW" not in lines[0].split("NODE DENY")[0]
    assert f" NODE DENY: {FORGED!r} {{" in lines[0]  # the node as a Python literal, newline escaped


def test_every_control_character_of_a_message_is_escaped(captured: io.StringIO) -> None:
    configure_logging("INFO", "text", stream=captured)
    logging.getLogger("nodeauthz.test").warning("user %s", "a\r\nb\x1b[31mc")
    assert captured.getvalue().count("\n") == 1
    assert captured.getvalue().rstrip("\n").endswith("user a\\r\\nb\\x1b[31mc")


def test_commands_log_json_and_refuse_an_unknown_format(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    out = subprocess.run(
        [sys.executable, "-m", "app", "--database-url", url, "--log-format", "json", "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stderr.splitlines()]
    assert docs and all(d["logger"].startswith("alembic") for d in docs)
    env = {**os.environ, "NODEAUTHZ_LOG_FORMAT": "xml"}
    bad = subprocess.run(
        [sys.executable, "-m", "app", "--database-url", url, "stats"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert (
        bad.stderr.strip().splitlines()[-1]
        == "nodeauthz: error: NODEAUTHZ_LOG_FORMAT: expected one of text, json"
    )
