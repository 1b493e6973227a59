"""``nodeauthz denials`` as an operator runs it: the table, filters, --json, --explain, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from app.graph.denials import DenialKey, Tally, record_denials
from app.graph.store import GraphStore
from tests.cli.test_graph_commands import nodeauthz
from tests.web.test_authorize import load_sample

TLS = DenialKey("node-c", "get", "secrets", "", "shop", "web-tls", "no relationship found")
GHOST = DenialKey("node-c", "get", "secrets", "", "shop", "old-token", "no relationship found")
OLD = DenialKey("node-a", "list", "configmaps", "", "", "", "only get")


def seed(engine: Engine) -> datetime:
    """Denials seen relative to now, taken as they are written (not at import: a loaded machine can
    reach a test minutes later, past ``--since 2m``); returns that now."""
    now = datetime.now(UTC).replace(microsecond=0)
    record_denials(
        engine,
        {
            TLS: Tally(7, now - timedelta(minutes=50), now - timedelta(minutes=1)),
            GHOST: Tally(2, now - timedelta(minutes=20), now - timedelta(minutes=5)),
            OLD: Tally(40, now - timedelta(days=3), now - timedelta(days=2)),
        },
    )
    return now


def test_the_table_sorted_by_count(database_url: str, engine: Engine) -> None:
    seed(engine)
    out = nodeauthz(database_url, "denials")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["COUNT", "NODE", "VERB", "RESOURCE", "OBJECT"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["40", "node-a", "list", "configmaps", "-"],
        ["7", "node-c", "get", "secrets", "shop/web-tls"],
        ["2", "node-c", "get", "secrets", "shop/old-token"],
    ]
    assert lines[2].endswith("no relationship found")


def test_since_node_resource_and_json(database_url: str, engine: Engine) -> None:
    now = seed(engine)
    out = nodeauthz(
        database_url, "denials", "--since", "1h", "--node", "node-c", "--resource", "secrets", "--json"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [(d["name"], d["count"]) for d in doc] == [("web-tls", 7), ("old-token", 2)]
    assert doc[0]["firstSeen"] == (now - timedelta(minutes=50)).isoformat()
    assert doc[0]["lastSeen"] == (now - timedelta(minutes=1)).isoformat()
    assert (
        json.loads(nodeauthz(database_url, "denials", "--since", "2m", "--json").stdout)[0]["name"]
        == "web-tls"
    )


def test_explain_finds_the_secret_no_pod_uses(database_url: str, engine: Engine, store: GraphStore) -> None:
    load_sample(store)
    seed(engine)
    doc = json.loads(nodeauthz(database_url, "denials", "--explain", "--json").stdout)
    assert {d["name"]: d["referenced"] for d in doc} == {"": None, "web-tls": True, "old-token": False}
    table = nodeauthz(database_url, "denials", "--explain").stdout.splitlines()
    assert table[0].split()[9] == "USED"
    assert [line.split()[9] for line in table[1:]] == ["-", "yes", "no"]


def test_bad_input_is_one_line_and_exit_2(database_url: str) -> None:
    for args in (["--since", "yesterday"], ["--since", ""], ["--limit", "0"]):
        out = nodeauthz(database_url, "denials", *args)
        assert out.returncode == 2, args
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("nodeauthz: error: ")


def test_an_unmigrated_database_is_refused(tmp_path: object) -> None:
    out = nodeauthz(f"sqlite:///{tmp_path}/none.db", "denials")
    assert out.returncode == 2 and "Traceback" not in out.stderr
