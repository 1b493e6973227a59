"""The shipped manifests stay in step with the code: their commands parse, probes hit the probe port."""

from __future__ import annotations

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
