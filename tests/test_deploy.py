"""The shipped manifests stay in step with the code: their commands parse, probes hit the probe port."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app.cli.main import build_parser
from app.k8s.watched_resources import CANDIDATES

MANIFESTS = Path(__file__).resolve().parent.parent / "deploy" / "nodeauthz.yaml"


def docs() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFESTS.read_text())}


def test_container_commands_are_valid_nodeauthz_invocations() -> None:
    manifests = docs()
    for kind in ("Deployment", "Job"):
        for container in manifests[kind]["spec"]["template"]["spec"]["containers"]:
            build_parser().parse_args(container["args"])  # exits (SystemExit) on an unknown flag


def test_probes_use_the_plain_http_health_port() -> None:
    container = docs()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.tls_client_ca, "production serves the webhook with client-certificate verification"
    assert ports["health"] == args.health_port and ports["webhook"] == args.port
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_rbac_grants_exactly_what_the_informers_watch() -> None:
    granted = {
        (group, resource)
        for rule in docs()["ClusterRole"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if set(rule["verbs"]) == {"list", "watch"}
    }
    watched = {(group, name) for name, (group, _versions, _kind) in CANDIDATES.items()}
    assert granted == watched
    assert not any("secrets" in rule["resources"] for rule in docs()["ClusterRole"]["rules"])
    # Beyond list/watch, only what NodeRestriction's authorizer questions need.
    others = [rule for rule in docs()["ClusterRole"]["rules"] if set(rule["verbs"]) != {"list", "watch"}]
    assert others == [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}
    ]


def test_the_service_monitor_scrapes_metrics_on_the_probe_port() -> None:
    manifests = docs()
    container = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    service = manifests["Service"]
    (endpoint,) = manifests["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["targetPort"] == "health"  # the probe listener: plain HTTP, serves /metrics
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports["health"] == args.health_port
    selector = manifests["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()


def test_alerts_use_only_metrics_the_code_exports_and_match_the_readme() -> None:
    from app.ha.metrics import leader_metrics
    from app.sync.metrics import sync_metrics
    from app.telemetry.prometheus import database_errors
    from app.web.metrics import render_metrics, webhook_metrics

    webhook_metrics(), sync_metrics(), leader_metrics(), database_errors()
    exported = set()
    typed = re.findall(r"^# TYPE (\S+) (\w+)$", render_metrics()[0].decode(), re.M)
    for name, kind in typed:
        exported.add(name)
        if kind == "histogram":
            exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    readme = (MANIFESTS.parent.parent / "README.md").read_text()
    rules = docs()["PrometheusRule"]["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {"NodeauthzNotReady", "NodeauthzSyncStale", "NodeauthzErrors"}
    for rule in rules:
        used = set(re.findall(r"\bnodeauthz_\w+", rule["expr"]))
        assert used and used <= exported, used - exported
        assert rule["expr"] in readme, f"README lacks the {rule['alert']} expression"
    table = set(re.findall(r"^\| `(nodeauthz_\w+)` \|", readme, re.M))
    assert table == {n for n, _ in typed if n.startswith("nodeauthz_") and not n.endswith("_created")}
