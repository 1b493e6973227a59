"""Where NodeRestriction's SubjectAccessReviews go, and what a failure answers."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.admission.lookups import AccessQuestion
from app.web import access_reviews
from app.web.access_reviews import KubeconfigError, SubjectAccessReviewer, load_target, target_from_kubeconfig
from tests.fake_apiserver import FakeApiServer

QUESTION = AccessQuestion(
    user="system:node:n1",
    groups=("system:nodes",),
    uid="u-1",
    extra={"authentication.kubernetes.io/node-name": ("n1",)},
    verb="request-serviceaccounts-token-audience",
    namespace="ns",
    api_group="",
    api_version="v1",
    resource="vault",
    name="sa",
)


def kubeconfig(path: Path, user: dict[str, object], cluster: dict[str, object] | None = None) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster or {"server": "https://api.example:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_kubeconfig_fields_a_webhook_uses(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("secret-token\n")
    target = target_from_kubeconfig(
        kubeconfig(
            tmp_path / "kc",
            {"tokenFile": "token", "client-certificate-data": base64.b64encode(b"CERT").decode()},
            {"server": "https://api.example:6443/", "certificate-authority": "ca.crt"},
        )
    )
    assert target.server == "https://api.example:6443"
    assert target.ca_file == str(tmp_path / "ca.crt")  # relative to the kubeconfig, as kubectl reads it
    assert target.bearer() == "secret-token"  # read at each request: projected tokens rotate
    assert target.cert_file and Path(target.cert_file).read_bytes() == b"CERT"


def test_exec_credentials_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", {"exec": {"command": "aws"}})
    with pytest.raises(KubeconfigError, match="exec/auth-provider"):
        target_from_kubeconfig(path)
    # Only an explicit --kubeconfig stops the command; an implicit one means "none", with the reason.
    target, why = load_target(None, env={"KUBECONFIG": path, "HOME": str(tmp_path)})
    assert target is None and "exec/auth-provider" in why


def test_a_ca_that_cannot_be_loaded_is_a_kubeconfig_error(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc", {"token": "t"}, {"server": "https://x:6443", "certificate-authority": "no.crt"}
    )
    target, _ = load_target(path)
    with pytest.raises(KubeconfigError, match="TLS"):
        SubjectAccessReviewer(target, timeout=1.0)


def test_in_cluster_when_running_in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("pod-token")
    monkeypatch.setattr(access_reviews, "SERVICE_ACCOUNT_DIR", sa)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": str(tmp_path)}
    target, _ = load_target(None, env=env)
    assert target is not None and target.server == "https://10.96.0.1:443"
    assert target.bearer() == "pod-token" and target.ca_file == str(sa / "ca.crt")
    assert load_target(None, env={"HOME": str(tmp_path)}) == (None, "")  # nowhere to ask


def test_the_review_is_sent_as_the_api_server_builds_it(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        api.access[("system:node:n1", "*", "ns", "vault", "sa")] = True
        target, _ = load_target(str(api.write_kubeconfig(tmp_path / "kc")))
        answer = SubjectAccessReviewer(target, timeout=2.0)(QUESTION)
    assert answer.allowed and not answer.error
    (sent,) = api.access_reviews
    assert sent["spec"]["uid"] == "u-1"
    assert sent["spec"]["extra"] == {"authentication.kubernetes.io/node-name": ["n1"]}


def test_failures_are_answers_never_exceptions(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        target, _ = load_target(str(api.write_kubeconfig(tmp_path / "kc")))
        api.access_delay = 1.0
        slow = SubjectAccessReviewer(target, timeout=0.2)(QUESTION)
    assert not slow.allowed and "no answer within 0.2s" in slow.error
    gone = SubjectAccessReviewer(target, timeout=1.0)(QUESTION)  # the server has stopped
    assert not gone.allowed and gone.error.startswith("SubjectAccessReview: URLError")
    unauthorized = SubjectAccessReviewer(
        access_reviews.ApiTarget(server=target.server if target else "", token="wrong"), timeout=1.0
    )
    with FakeApiServer() as other:
        unauthorized.target = access_reviews.ApiTarget(server=other.url, token="wrong")
        answer = unauthorized(QUESTION)
    assert not answer.allowed and answer.error == "SubjectAccessReview: HTTP 401 Unauthorized"
    nowhere = SubjectAccessReviewer(None, timeout=1.0)(QUESTION)
    assert not nowhere.allowed and "--kubeconfig" in nowhere.error


def test_an_unusable_kubeconfig_stops_serve_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--kubeconfig", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"nodeauthz: error: --kubeconfig: kubeconfig {missing}: [Errno 2] No such file or directory: '{missing}'"
    )
    assert "Traceback" not in proc.stderr
