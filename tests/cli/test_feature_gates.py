"""``--feature-gates`` (and ``NODEAUTHZ_FEATURE_GATES``) through the installed ``nodeauthz`` script.

Bad values fail as kube-apiserver's flag does, with its texts: one line on stderr, exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.k8s.feature_gates import GATES, parse_feature_gates

NODEAUTHZ = str(Path(sys.executable).with_name("nodeauthz"))
SLICES = ["--verb", "watch", "--api-group", "resource.k8s.io", "--resource", "resourceslices"]
CREATE_PCR = [
    "--verb",
    "create",
    "--api-group",
    "certificates.k8s.io",
    "--resource",
    "podcertificaterequests",
]
NODE = ["--user", "system:node:node-a"]


def nodeauthz(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NODEAUTHZ_")} | (env or {})
    return subprocess.run(
        [NODEAUTHZ, "--database-url", "sqlite:///unused.db", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return nodeauthz("check", *NODE, *args, env=env)


@pytest.mark.parametrize(
    ("gates", "error"),
    [
        ("Nope=true", "unrecognized feature gate: Nope"),
        (
            "AuthorizeNodeWithSelectors=false",
            "cannot set feature gate AuthorizeNodeWithSelectors to false, feature is locked to true",
        ),
        (
            "RecoverVolumeExpansionFailure=false",
            "cannot set feature gate RecoverVolumeExpansionFailure to false, feature is locked to true",
        ),
        ("PodCertificateRequest", "missing bool value for PodCertificateRequest"),
        (
            "PodCertificateRequest=maybe",
            'invalid value of PodCertificateRequest=maybe, err: strconv.ParseBool: parsing "maybe": invalid syntax',
        ),
    ],
    ids=["unknown", "locked", "locked-admission", "no-value", "bad-bool"],
)
def test_bad_gates_fail_with_one_line_and_exit_2(gates: str, error: str) -> None:
    for command in (["check", *NODE, *SLICES], ["serve"], ["run"], ["check-admission", "-"]):
        out = nodeauthz(*command, "--feature-gates", gates)
        assert out.returncode == 2, (command, out.stderr)
        assert out.stderr == f"nodeauthz: error: --feature-gates: {error}\n", command
        assert out.stdout == ""


def test_bad_environment_variable_names_itself() -> None:
    out = check(*SLICES, env={"NODEAUTHZ_FEATURE_GATES": "Nope=1"})
    assert out.returncode == 2
    assert out.stderr == "nodeauthz: error: NODEAUTHZ_FEATURE_GATES: unrecognized feature gate: Nope\n"


def test_gates_change_the_decision_from_flag_and_environment() -> None:
    # PodCertificateRequest is on by default: the authorizer allows a node's create (admission checks it).
    assert (check(*CREATE_PCR).returncode, check(*CREATE_PCR).stdout) == (0, "yes\n")
    off = check(*CREATE_PCR, "--feature-gates", "PodCertificateRequest=false")
    assert (off.returncode, off.stdout) == (1, "no\n")
    env_off = check(*CREATE_PCR, env={"NODEAUTHZ_FEATURE_GATES": "PodCertificateRequest=false"})
    assert (env_off.returncode, env_off.stdout) == (1, "no\n")
    # The flag wins over the environment; go-style booleans and spaces are accepted.
    both = check(
        *CREATE_PCR,
        "--feature-gates",
        " PodCertificateRequest = T ",
        env={"NODEAUTHZ_FEATURE_GATES": "PodCertificateRequest=false"},
    )
    assert (both.returncode, both.stdout) == (0, "yes\n")


def test_deprecated_alias_warns_and_still_works() -> None:
    out = check(*SLICES, "--authorize-with-selectors", "true", "--field-selector", "spec.nodeName=node-a")
    assert out.returncode == 0 and out.stdout == "yes\n"
    assert out.stderr == (
        "nodeauthz: warning: --authorize-with-selectors is deprecated and will be removed in the next "
        "release; use --feature-gates AuthorizeNodeWithSelectors=true\n"
    )
    locked = check(*SLICES, "--authorize-with-selectors", "false")
    assert locked.returncode == 2
    assert locked.stderr.splitlines()[-1] == (
        "nodeauthz: error: --feature-gates: "
        "cannot set feature gate AuthorizeNodeWithSelectors to false, feature is locked to true"
    )


def test_check_admission_takes_the_gates() -> None:
    review = (
        '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",'
        '"kind":{"group":"certificates.k8s.io","version":"v1","kind":"PodCertificateRequest"},'
        '"resource":{"group":"certificates.k8s.io","version":"v1","resource":"podcertificaterequests"},'
        '"operation":"CREATE","name":"p","namespace":"ns",'
        '"userInfo":{"username":"system:node:mynode","groups":["system:nodes"]},'
        '"object":{"apiVersion":"certificates.k8s.io/v1","kind":"PodCertificateRequest",'
        '"metadata":{"name":"p","namespace":"ns"},"spec":{"nodeName":"mynode"}}}}'
    )
    out = subprocess.run(
        [NODEAUTHZ, "--database-url", "sqlite:///unused.db", "check-admission", "-", "--feature-gates",
         "PodCertificateRequest=false"],
        input=review, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.splitlines()[-1] == (
        '  podcertificaterequests.certificates.k8s.io "p" is forbidden: PodCertificateRequest feature gate is disabled'
    )


def test_help_lists_every_gate_with_its_default() -> None:
    for command in ("serve", "run", "check", "check-admission"):
        text = nodeauthz(command, "--help").stdout
        assert "--feature-gates NAME=BOOL,..." in text
        for gate in GATES:
            assert f"  {gate.name}={str(gate.default).lower()} (" in text, (command, gate.name)


def test_gate_text_round_trips() -> None:
    gates = parse_feature_gates("PodCertificateRequest=false,ClusterTrustBundleProjection=1")
    assert str(gates) == "ClusterTrustBundleProjection=true,PodCertificateRequest=false"
    assert parse_feature_gates(str(gates)) == gates
    assert parse_feature_gates("PodCertificateRequest=false,PodCertificateRequest=true").enabled(
        "PodCertificateRequest"
    )
