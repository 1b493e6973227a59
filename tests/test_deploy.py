"""The shipped manifests stay in step with the code: their commands parse, probes hit the probe port, pods pass
the restricted Pod Security Standard, the network policy admits exactly the container ports, the webhook
configuration cannot lock nodeauthz out, and the kube-apiserver's files point at the Service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from app.cli.main import build_parser
from app.k8s.watched_resources import CANDIDATES

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = DEPLOY / "nodeauthz.yaml"


def docs(path: Path = MANIFESTS) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = docs()["Deployment"]["spec"]["template"]["spec"]
    return spec


def test_container_commands_are_valid_nodeauthz_invocations() -> None:
    spec = pod_spec()
    for container in spec["initContainers"] + spec["containers"]:
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


def test_every_pod_migrates_before_it_serves_with_its_own_image() -> None:
    """An init container, not a Job: a Job's template is immutable, so a fixed-name Job cannot be re-applied
    with the next release's image; each pod migrating is repeat-safe (concurrent migrators take turns)."""
    spec = pod_spec()
    (init,) = spec["initContainers"]
    (main,) = spec["containers"]
    assert build_parser().parse_args(init["args"]).command == "migrate"
    assert init["image"] == main["image"]
    assert init["env"] == [e for e in main["env"] if e["name"] == "NODEAUTHZ_DATABASE_URL"]
    assert init["resources"]["requests"] and init["resources"]["limits"]["memory"]
    assert not any(d["kind"] == "Job" for d in yaml.safe_load_all(MANIFESTS.read_text()))


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip


def test_pods_pass_the_restricted_pod_security_standard() -> None:
    manifests = docs()
    namespace = manifests["Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert manifests["Deployment"]["metadata"]["namespace"] == namespace["metadata"]["name"]
    spec = pod_spec()
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
    for container in spec["initContainers"] + spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged"), container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0
        assert sc.get("seccompProfile", pod_sc["seccompProfile"])["type"] == "RuntimeDefault"
        assert not any("hostPort" in p for p in container.get("ports", []))


def test_the_network_policy_admits_exactly_the_container_ports() -> None:
    policy = docs(DEPLOY / "networkpolicy.yaml")["NetworkPolicy"]
    deployment = docs()["Deployment"]
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    by_port = {p["port"]: rule["from"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert set(by_port) == {ports["webhook"], ports["health"]}
    # The webhook port: addresses only (the API servers); no pod or namespace in the cluster may call it.
    assert by_port[ports["webhook"]] and all(set(peer) == {"ipBlock"} for peer in by_port[ports["webhook"]])


def _webhooks() -> dict[str, dict[str, Any]]:
    config = docs(DEPLOY / "webhook-configuration.yaml")["ValidatingWebhookConfiguration"]
    return {w["name"]: w for w in config["webhooks"]}


def _resources(webhook: dict[str, Any]) -> set[tuple[str, str]]:
    return {(g, r) for rule in webhook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def test_the_webhooks_call_the_service_and_cover_every_noderestriction_rule() -> None:
    from app.admission.restriction import _RULES

    manifests = docs()
    service, deployment = manifests["Service"], manifests["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    webhook_port = next(p for p in service["spec"]["ports"] if p["targetPort"] == "webhook")["port"]
    covered: set[tuple[str, str]] = set()
    for webhook in _webhooks().values():
        svc = webhook["clientConfig"]["service"]
        assert (svc["namespace"], svc["name"]) == (
            service["metadata"]["namespace"],
            service["metadata"]["name"],
        )
        assert (svc["path"], svc["port"]) == ("/admit", webhook_port)
        assert webhook["matchConditions"] == [
            {"name": "only-nodes", "expression": "'system:nodes' in request.userInfo.groups"}
        ]
        covered |= {(g, r.split("/")[0]) for g, r in _resources(webhook)}
    assert covered == set(_RULES)


def test_the_webhooks_cannot_lock_nodeauthz_out() -> None:
    """All replicas down: heartbeats go through (Ignore), nodeauthz's own pods can get tokens and report
    ready (exempt namespace), every other kubelet write is refused (Fail), mirror pods included."""
    namespace = docs()["Namespace"]["metadata"]["name"]
    heartbeat = {("", "nodes/status"), ("coordination.k8s.io", "leases")}
    own_pods = {("", "pods/status"), ("", "serviceaccounts/token")}
    for webhook in _webhooks().values():
        resources = _resources(webhook)
        exempt = webhook.get("namespaceSelector", {}).get("matchExpressions", [])
        if resources & heartbeat:
            assert resources == heartbeat and webhook["failurePolicy"] == "Ignore"
            assert webhook["timeoutSeconds"] <= 2  # a hung replica must not delay a heartbeat for long
        else:
            assert webhook["failurePolicy"] == "Fail", webhook["name"]
        if resources & own_pods:
            assert resources == own_pods
            assert exempt == [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [namespace]}
            ]
        else:
            assert not exempt and "objectSelector" not in webhook, webhook[
                "name"
            ]  # pods CREATE: never exempt


def _kubeconfig(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "apiserver" / name).read_text())
    return loaded


def test_the_api_server_presents_a_client_certificate_to_the_admission_webhook() -> None:
    admission = docs(DEPLOY / "apiserver" / "admission-configuration.yaml")["AdmissionConfiguration"]
    (plugin,) = [p for p in admission["plugins"] if p["name"] == "ValidatingAdmissionWebhook"]
    assert plugin["configuration"]["kind"] == "WebhookAdmissionConfiguration"
    kubeconfig = plugin["configuration"]["kubeConfigFile"]
    assert (DEPLOY / "apiserver" / Path(kubeconfig).name).exists()
    (user,) = _kubeconfig(Path(kubeconfig).name)["users"]
    svc = _webhooks()["noderestriction.nodeauthz.io"]["clientConfig"]["service"]
    # For a service on a port other than 443 the API server looks the user up as <svc>.<ns>.svc:<port>.
    assert user["name"] == f"{svc['name']}.{svc['namespace']}.svc:{svc['port']}"
    assert user["user"]["client-certificate"] and user["user"]["client-key"]


def test_the_authorization_webhook_kubeconfig_reaches_the_service() -> None:
    authz = docs(DEPLOY / "apiserver" / "authorization-configuration.yaml")["AuthorizationConfiguration"]
    (webhook,) = [a for a in authz["authorizers"] if a["type"] == "Webhook"]
    assert webhook["webhook"]["failurePolicy"] == "NoOpinion"
    assert webhook["webhook"]["cacheUnauthorizedRequests"] is False
    kubeconfig = _kubeconfig(Path(webhook["webhook"]["connectionInfo"]["kubeConfigFile"]).name)
    (cluster,) = kubeconfig["clusters"]
    service = docs()["Service"]
    port = next(p for p in service["spec"]["ports"] if p["targetPort"] == "webhook")["port"]
    assert cluster["cluster"]["server"] == f"https://{service['spec']['clusterIP']}:{port}/authorize"
    meta = service["metadata"]
    assert cluster["cluster"]["tls-server-name"] == f"{meta['name']}.{meta['namespace']}.svc"
    (user,) = kubeconfig["users"]
    assert user["user"]["client-certificate"] and user["user"]["client-key"]


def test_the_readme_names_every_deploy_file() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            assert f"deploy/{path.relative_to(DEPLOY)}" in readme, path


def _dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into build stages at each FROM."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY.parent / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[str]] = [[]]
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages[1:]


def test_the_image_is_built_in_two_stages_and_labelled_with_version_and_revision() -> None:
    import tomllib

    builder, final = _dockerfile_stages()
    assert builder[0].endswith(" AS builder") and "pip wheel" in " ".join(builder)
    final_text = " ".join(final)
    # No compiler, no sources, no index in the image that runs: only the builder's wheels, offline.
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", final_text)
    assert not any(line.startswith(("COPY app", "COPY pyproject")) for line in final)
    (install,) = [line for line in final if "pip install" in line]
    assert "--no-index" in install and "from=builder" in install
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", "\n".join(final), re.M))
    version = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["version"]
    assert args["VERSION"] == version and "REVISION" in args
    assert 'org.opencontainers.image.version="${VERSION}"' in final_text
    assert 'org.opencontainers.image.revision="${REVISION}"' in final_text
    (user,) = [line for line in final if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] == str(pod_spec()["securityContext"]["runAsUser"])
    image = pod_spec()["containers"][0]["image"]
    assert image.endswith(f":{version}")
