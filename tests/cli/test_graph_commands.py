"""The graph commands as users run them: migrate, load (JSON, YAML, stdin), explain, stats."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func, select

from app.graph.schema import objects
from tests.builders import node, pod, pv


def nodeauthz(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--database-url", url, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def as_list(*items: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(
        as_list(
            node("n1"),
            pod("db", "shop", "n1", pvcs=("data",), secrets=("db-pass",)),
            pv("pv-data", ("shop", "data"), csi_secrets={"nodePublishSecretRef": ("csi", "publish")}),
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-pass", "namespace": "shop"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"}},
        )
    )
    return path


def test_migrate_then_load_a_list(database_url: str, engine: Engine, cluster_file: Path) -> None:
    assert nodeauthz(database_url, "migrate").returncode == 0  # already at head: a no-op
    out = nodeauthz(database_url, "load", str(cluster_file))
    assert out.returncode == 0, out.stderr
    assert "applied 1 node, 1 pod, 1 pv (3 written, 0 unchanged); skipped 1 Secret, 1 Service" in out.stdout
    again = nodeauthz(database_url, "load", str(cluster_file))
    assert "(0 written, 3 unchanged)" in again.stdout  # idempotent


def test_load_yaml_documents_and_stdin(database_url: str, engine: Engine, tmp_path: Path) -> None:
    docs = tmp_path / "pods.yaml"
    docs.write_text(yaml.safe_dump_all([pod("a", "shop", "n1", secrets=("s",)), pod("b", "shop", "n2")]))
    assert nodeauthz(database_url, "load", str(docs)).returncode == 0
    piped = nodeauthz(database_url, "load", "-", stdin=json.dumps(pod("c", "shop", "n3")))
    assert piped.returncode == 0 and "applied 1 pod" in piped.stdout
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(objects)).scalar_one() == 3


def test_malformed_file_names_the_item_and_applies_nothing(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    bad = pod("broken", "shop", "n1")
    bad["spec"]["volumes"] = [{"name": "v", "secret": {"secretName": 7}}]
    path = tmp_path / "bad.json"
    path.write_text(as_list(pod("fine", "shop", "n1"), bad))
    out = nodeauthz(database_url, "load", str(path))
    assert out.returncode == 1
    assert f"{path}: item 1 (Pod broken): spec.volumes[0].secret.secretName: expected string" in out.stderr
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(objects)).scalar_one() == 0  # not even "fine"
    (tmp_path / "junk.json").write_text("{nope")
    junk = nodeauthz(database_url, "load", str(tmp_path / "junk.json"))
    assert junk.returncode == 1 and "malformed JSON" in junk.stderr


def test_explain_paths_exit_codes_and_json(database_url: str, cluster_file: Path) -> None:
    nodeauthz(database_url, "load", str(cluster_file))
    found = nodeauthz(
        database_url, "explain", "--node", "n1", "--kind", "secret", "-n", "csi", "--name", "publish"
    )
    assert found.returncode == 0
    assert "secret csi/publish -> pv pv-data -> pvc shop/data -> pod shop/db -> node n1" in found.stdout
    none = nodeauthz(
        database_url, "explain", "--node", "n2", "--kind", "secret", "-n", "csi", "--name", "publish"
    )
    assert none.returncode == 1 and "no path from secret csi/publish to node n2" in none.stdout
    short = nodeauthz(database_url, "explain", "--node", "n1", "--kind", "pv", "--name", "pv-data", "--json")
    doc = json.loads(short.stdout)
    assert short.returncode == 0 and doc["reachable"] is True
    assert [v["kind"] for v in doc["paths"][0]] == ["pv", "pvc", "pod", "node"]
    for usage in (
        ["--kind", "gizmo", "-n", "x", "--name", "y"],  # unknown kind
        ["--kind", "secret", "--name", "y"],  # namespaced kind without a namespace
    ):
        assert nodeauthz(database_url, "explain", "--node", "n1", *usage).returncode == 2


def test_stats_counts_by_kind(database_url: str, cluster_file: Path) -> None:
    nodeauthz(database_url, "load", str(cluster_file))
    out = nodeauthz(database_url, "stats", "--json")
    stats = json.loads(out.stdout)
    assert stats["objects"] == {"node": 1, "pod": 1, "pv": 1}
    assert stats["edges"]["secret -> pv"] == 1 and stats["edges"]["pvc -> pod"] == 1


def test_commands_refuse_an_unmigrated_database(tmp_path: Path, cluster_file: Path) -> None:
    missing = nodeauthz(f"sqlite:///{tmp_path / 'missing.db'}", "load", str(cluster_file))
    assert missing.returncode == 2 and "`nodeauthz migrate` creates" in missing.stderr
    assert not (tmp_path / "missing.db").exists()  # only migrate creates a database file
    sqlite3.connect(tmp_path / "empty.db").close()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    out = nodeauthz(url, "load", str(cluster_file))
    assert out.returncode == 2 and "run `nodeauthz migrate`" in out.stderr


def test_reach_lists_what_a_node_reads_and_why(database_url: str, cluster_file: Path) -> None:
    assert nodeauthz(database_url, "load", str(cluster_file)).returncode == 0
    out = nodeauthz(database_url, "reach", "--node", "n1", "--kind", "secret", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "node": "n1",
        "objects": [
            {
                "kind": "secret",
                "namespace": "csi",
                "name": "publish",
                "via": {"kind": "pod", "namespace": "shop", "name": "db"},
            },
            {
                "kind": "secret",
                "namespace": "shop",
                "name": "db-pass",
                "via": {"kind": "pod", "namespace": "shop", "name": "db"},
            },
        ],
    }
    text = nodeauthz(database_url, "reach", "--node", "n1").stdout.splitlines()
    assert text[0].startswith("node n1 may read ")
    assert "secret csi/publish via pod shop/db" in [" ".join(line.split()) for line in text]
    nothing = nodeauthz(database_url, "reach", "--node", "n2")
    assert nothing.returncode == 1 and "may read nothing" in nothing.stdout


def test_reach_refuses_an_unknown_kind(database_url: str) -> None:
    for kind in ("widgets", "node"):
        out = nodeauthz(database_url, "reach", "--node", "n1", "--kind", kind)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("nodeauthz: error: --kind")
