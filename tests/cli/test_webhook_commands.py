"""``nodeauthz check`` (exit codes and output), serving settings, and ``nodeauthz demo`` as a real server."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli.errors import UsageError
from app.cli.main import main
from app.cli.webhook_commands import parse_field_selector
from app.graph.store import GraphStore
from app.k8s.attributes import FieldRequirement
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGateError, parse_feature_gates
from app.web.settings import Settings
from tests.servers import wait_ready
from tests.web.test_authorize import load_sample

NODE_A = ["--user", "system:node:node-a"]


@pytest.fixture
def loaded(database_url: str, store: GraphStore) -> str:
    load_sample(store)
    return database_url


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str]:
    code = main(["--database-url", url, "check", *args])
    return code, capsys.readouterr().out.strip()


def test_check_allowed_and_refused(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    secret = ["--verb", "get", "--resource", "secrets", "--namespace", "shop", "--name", "web-tls"]
    assert run(capsys, loaded, *NODE_A, *secret) == (0, "yes")
    code, out = run(capsys, loaded, "--user", "system:node:node-c", *secret)
    assert (code, out) == (1, "no - no relationship found between node 'node-c' and this object")
    # Not a node: no opinion and no reason, like the in-tree authorizer.
    assert run(capsys, loaded, "--user", "alice", "--group", "system:authenticated", *secret) == (1, "no")


def test_check_field_selectors(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    pods = ["--verb", "list", "--resource", "pods"]
    assert run(capsys, loaded, *NODE_A, *pods, "--field-selector", "spec.nodeName=node-a") == (0, "yes")
    assert run(capsys, loaded, *NODE_A, *pods, "--field-selector", "spec.nodeName==node-a") == (0, "yes")
    code, out = run(capsys, loaded, *NODE_A, *pods, "--field-selector", "spec.nodeName!=node-a")
    assert (code, out) == (1, "no - can only list/watch pods with spec.nodeName field selector")
    slices = ["--verb", "watch", "--api-group", "resource.k8s.io", "--resource", "resourceslices"]
    assert run(capsys, loaded, *NODE_A, *slices)[0] == 1
    # The deprecated alias still parses, but the gate is locked on (GA since 1.34).
    assert run(capsys, loaded, *NODE_A, *slices, "--authorize-with-selectors", "false")[0] == 2
    # metadata.name= on a list names the object, as the API server does: then the graph decides.
    by_name = ["--field-selector", "metadata.name=web-7d4b9-x2k8f", "--namespace", "shop"]
    assert run(capsys, loaded, *NODE_A, *pods, *by_name) == (0, "yes")


def test_check_static_rule_and_non_resource(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, loaded, *NODE_A, "--verb", "list", "--resource", "services") == (0, "yes")
    assert run(capsys, loaded, *NODE_A, "--verb", "get", "--path", "/metrics")[0] == 1


def console(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "app", *argv], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("database", ["missing", "unmigrated"])
def test_check_that_cannot_reach_the_graph_is_an_error_not_a_no(tmp_path: Path, database: str) -> None:
    path = tmp_path / "graph.db"
    if database == "unmigrated":
        sqlite3.connect(path).close()
    out = console(
        "--database-url", f"sqlite:///{path}", "check", *NODE_A,
        "--verb", "get", "--resource", "secrets", "--namespace", "shop", "--name", "web-tls",
    )  # fmt: skip
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("nodeauthz: error: nodeauthz: graph check failed: ")
    assert "reachable and migrated" in out.stderr and len(out.stderr.splitlines()) == 1
    # A static rule needs no graph: still answered.
    static = console(
        "--database-url", f"sqlite:///{path}", "check", *NODE_A, "--verb", "get", "--resource", "services"
    )
    assert static.returncode == 0 and static.stdout == "yes\n"


def test_log_level_is_checked_and_read_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    flag = console("--log-level", "LOUD", "--database-url", url, "migrate")
    assert flag.returncode == 2 and "invalid choice: 'LOUD'" in flag.stderr
    env = console("--database-url", url, "migrate", env={"NODEAUTHZ_LOG_LEVEL": "loud"})
    assert env.returncode == 2 and "NODEAUTHZ_LOG_LEVEL: expected one of" in env.stderr
    quiet = console("--database-url", url, "migrate", env={"NODEAUTHZ_LOG_LEVEL": "warning"})
    assert quiet.returncode == 0 and "Running upgrade" not in quiet.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--verb", "get"],  # neither --resource nor --path
        ["--verb", "get", "--path", "/healthz", "--resource", "pods"],
        ["--verb", "list", "--resource", "pods", "--field-selector", "spec.nodeName"],
        ["--verb", "get", "--resource", "pods", "--field-selector", "spec.nodeName=node-a"],
        ["--verb", "list", "--resource", "pods", "--authorize-with-selectors", "maybe"],
    ],
)
def test_check_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = main(["--database-url", f"sqlite:///{tmp_path}/x.db", "check", *NODE_A, *args])
    assert code == 2
    assert "nodeauthz: error:" in capsys.readouterr().err


def test_check_missing_required_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--verb", "get", "--resource", "pods"])
    assert exc.value.code == 2


def test_parse_field_selector() -> None:
    assert parse_field_selector("spec.nodeName=a, metadata.name==b,status.phase!=Running") == [
        FieldRequirement("spec.nodeName", "In", ("a",)),
        FieldRequirement("metadata.name", "In", ("b",)),
        FieldRequirement("status.phase", "NotIn", ("Running",)),
    ]
    with pytest.raises(UsageError):
        parse_field_selector("=x")


def test_settings_validation_and_env_round_trip() -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(database_url="sqlite:///x.db", tls_cert="c.pem")
    with pytest.raises(ValueError, match="needs"):
        Settings(database_url="sqlite:///x.db", tls_client_ca="ca.pem")
    settings = Settings(
        database_url="sqlite:///x.db",
        port=9443,
        feature_gates=parse_feature_gates("PodCertificateRequest=false,ClusterTrustBundleProjection=true"),
        tls_cert="c.pem",
        tls_key="k.pem",
        tls_client_ca="ca.pem",
        pool_size=3,
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert settings.to_env()["NODEAUTHZ_FEATURE_GATES"] == (
        "ClusterTrustBundleProjection=true,PodCertificateRequest=false"
    )
    assert "NODEAUTHZ_FEATURE_GATES" not in Settings(database_url="sqlite:///x.db").to_env()
    env = {
        "NODEAUTHZ_FEATURE_GATES": "PodCertificateRequest=false",
        "NODEAUTHZ_DATABASE_URL": "sqlite:///y.db",
    }
    assert Settings.from_env(env).feature_gates.enabled("PodCertificateRequest") is False
    assert Settings.from_env(env, feature_gates=DEFAULT_GATES).feature_gates.enabled("PodCertificateRequest")
    with pytest.raises(FeatureGateError, match="^NODEAUTHZ_FEATURE_GATES: unrecognized feature gate: Nope$"):
        Settings.from_env({"NODEAUTHZ_FEATURE_GATES": "Nope=true"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serves_the_printed_requests(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--database-url",
            f"sqlite:///{tmp_path}/demo.db",
            "demo",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        commands: list[str] = []
        while len(commands) < 2:
            line = proc.stdout.readline()
            assert line, f"demo exited early: {(tmp_path / 'demo.log').read_text()}"
            if line.startswith("curl "):
                commands.append(line.strip())
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp_path / "demo.log")
        answers = []
        for command in commands:
            argv = shlex.split(command)  # what a shell would run
            url, body = argv[argv.index("POST") + 1], argv[argv.index("-d") + 1]
            resp = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
            answers.append(resp.json()["status"])
        assert answers == [
            {"allowed": True},
            {"allowed": False, "reason": "no relationship found between node 'node-c' and this object"},
        ]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _issue(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    files: dict[str, Path] = {}

    def cert(
        name: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
        san: x509.GeneralName | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(
        "test-ca", ca_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")]), ca_key, True
    )
    for name, san in (("server", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{name}.crt"] = tmp_path / f"{name}.crt"
        files[f"{name}.crt"].write_bytes(
            cert(name, key, ca.subject, ca_key, False, san).public_bytes(serialization.Encoding.PEM)
        )
        files[f"{name}.key"] = tmp_path / f"{name}.key"
        files[f"{name}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    files["ca.crt"] = tmp_path / "ca.crt"
    files["ca.crt"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def test_serve_tls_requires_client_certificate(tmp_path: Path) -> None:
    import ssl

    pem, port = _issue(tmp_path), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--database-url",
            f"sqlite:///{tmp_path}/absent.db",
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(pem["server.crt"]),
            "--tls-key",
            str(pem["server.key"]),
            "--tls-client-ca",
            str(pem["ca.crt"]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}/healthz"
    with_cert = ssl.create_default_context(cafile=pem["ca.crt"])
    with_cert.load_cert_chain(pem["client.crt"], pem["client.key"])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(url, verify=with_cert, timeout=2).json() == {"status": "ok"}
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        without_cert = ssl.create_default_context(cafile=pem["ca.crt"])
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(url, verify=without_cert, timeout=2)
    finally:
        proc.terminate()
        proc.wait(10)


def test_health_port_serves_probes_without_client_certificates(database_url: str, tmp_path: Path) -> None:
    """kubelet probes cannot present the apiserver's client certificate: they get a plain-HTTP port
    that answers /healthz and /readyz and nothing else."""
    import ssl

    pem, port, health = _issue(tmp_path), _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--database-url",
            database_url,
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(pem["server.crt"]),
            "--tls-key",
            str(pem["server.key"]),
            "--tls-client-ca",
            str(pem["ca.crt"]),
            "--health-port",
            str(health),
            "--require-synced",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = f"http://127.0.0.1:{health}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{probe}/healthz", timeout=2).json() == {"status": "ok"}
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        ready = httpx.get(f"{probe}/readyz", timeout=2)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}}
        assert httpx.post(f"{probe}/authorize", json=review, timeout=2).status_code == 404  # never decides
        assert httpx.post(f"{probe}/admit", json=review, timeout=2).status_code == 404
        without_cert = ssl.create_default_context(cafile=pem["ca.crt"])
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=without_cert, timeout=2)
        proc.send_signal(signal.SIGTERM)  # one signal stops both listeners
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "an in-memory SQLite database cannot be shared"),
        ("notadb://host/db", "unsupported database 'notadb'"),
        (":::", "Could not parse"),
    ],
)
@pytest.mark.parametrize(
    "command", [["stats"], ["serve"], ["check", "--user", "u", "--verb", "get", "--path", "/"]]
)
def test_a_database_url_nodeauthz_cannot_use_is_one_line_and_exit_2(
    url: str, says: str, command: list[str]
) -> None:
    out = console("--database-url", url, *command)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"nodeauthz: error: --database-url / NODEAUTHZ_DATABASE_URL: {says}" in out.stderr


def test_demo_never_loads_into_the_database_the_environment_names(tmp_path: Path) -> None:
    """NODEAUTHZ_DATABASE_URL may be a real cluster's database: the demo's fake nodes go to their own file."""
    real = tmp_path / "real-cluster.db"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--port", str(port)],
        cwd=tmp_path, env={**os.environ, "NODEAUTHZ_DATABASE_URL": f"sqlite:///{real}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert (tmp_path / "nodeauthz-demo.db").exists()
    assert not real.exists()


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/nodeauthz", "sqlite:////nonexistent-directory/graph.db"]
)
def test_migrate_on_a_database_it_cannot_reach_is_one_line_and_exit_2(url: str) -> None:
    out = console("--database-url", url, "migrate")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("nodeauthz: error: cannot migrate the database: ")
