"""Every configuration flag has its environment variable, one README table lists them all, bad values stop
the command at start with one line and exit 2. Generic: it walks the real argparse parsers, so a flag
added later without a variable or a row fails here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

from app.cli.env_flags import GLOBAL, command_parsers, env_var
from app.cli.main import build_parser
from app.web.settings import Settings
from tests.servers import nodeauthz_script

README = Path(__file__).resolve().parents[2] / "README.md"
# Commands whose flags configure a long-running process or the database; the others ask one question.
CONFIG_COMMANDS = (GLOBAL, "serve", "run", "sync", "migrate")
ROW = re.compile(r"^\| (`--[a-z0-9-]+`|\(none\)) \| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \|$", re.M)


def readme_rows() -> dict[str, tuple[str, str]]:
    """env var -> (flag cell, default cell), from the one table that has them all."""
    rows = {env: (flag, default) for flag, env, default, _ in ROW.findall(README.read_text())}
    assert len(rows) >= 20, "the flags table is missing from README.md"
    return rows


def config_flags() -> list[tuple[str, argparse.Action]]:
    """(command, action) for every configuration flag, deprecated aliases left out."""
    flags = []
    for command, parser in command_parsers(build_parser()):
        if command not in CONFIG_COMMANDS:
            continue
        for action in parser._actions:
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            if (action.help or "").startswith("deprecated"):
                continue
            flags.append((command, action))
    return flags


def test_every_configuration_flag_names_its_variable_and_has_a_readme_row() -> None:
    rows = readme_rows()
    flags = config_flags()
    assert {c for c, _ in flags} >= {GLOBAL, "serve", "run", "sync"}
    for command, action in flags:
        flag = action.option_strings[-1]
        name = env_var(action)
        assert name is not None, f"{command or 'global'} {flag}: its help names no environment variable"
        expected = "KUBECONFIG" if action.dest == "kubeconfig" else f"NODEAUTHZ_{action.dest.upper()}"
        assert name == expected, (flag, name)
        assert name in rows, f"README's flags table has no row for {name}"
        assert rows[name][0] == f"`{flag}`", (name, rows[name])


def _formatted(value: object) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}"
    return value if isinstance(value, str) else None


def test_every_setting_has_a_row_with_its_default() -> None:
    """Settings read by the serving processes (flags or not) are in the same table, with their defaults."""
    rows = readme_rows()
    for field in dataclasses.fields(Settings):
        name = Settings.env_name(field.name)
        assert name in rows, f"README's flags table has no row for {name}"
        default = field.default if field.default is not dataclasses.MISSING else None
        if (text := _formatted(default)) is not None and field.name != "require_synced":
            assert f"`{text}`" in rows[name][1], (name, rows[name][1], text)


def _bad_value(action: argparse.Action) -> str | None:
    """A value the flag's own parsing refuses, or None when any text is a valid value."""
    if isinstance(action, argparse._StoreTrueAction) or action.type in (int, float) or action.choices:
        return "not-a-value"
    return None


def test_bad_values_from_the_environment_are_refused_at_start(tmp_path: Path) -> None:
    """Through the console script; the database does not exist, so nothing may get as far as opening it."""
    cases, seen = [], set()
    for command, action in config_flags():
        name, bad = env_var(action), _bad_value(action)
        if name is None or bad is None or name in seen or action.dest in ("log_level", "log_format"):
            continue  # the log options have their own test (tests/telemetry/test_logs.py)
        seen.add(name)  # serve and run share their serving flags: once is enough
        cases.append(([command or "migrate"], name, bad))
    # Values that parse but a check refuses, for settings that are not flags of their own.
    cases += [
        (["serve"], "NODEAUTHZ_DENIAL_BUFFER_SIZE", "0"),
        (["serve"], "NODEAUTHZ_REQUIRE_SYNCED", "pods,secrets"),
        (["serve"], "NODEAUTHZ_PORT", "70000"),
        (["sync"], "NODEAUTHZ_RESOURCES", "pods,secrets"),
        (["sync"], "NODEAUTHZ_LEASE_DURATION", "2"),
    ]
    assert len(cases) >= 15
    url = f"sqlite:///{tmp_path}/absent/graph.db"
    procs = [
        (argv, name, value, subprocess.Popen(
            [nodeauthz_script(), "--database-url", url, *argv],
            env={**os.environ, name: value}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
        for argv, name, value in cases
    ]  # fmt: skip
    for argv, name, value, proc in procs:
        out, err = proc.communicate(timeout=120)
        errors = [line for line in err.splitlines() if line.startswith("nodeauthz: error: ")]
        assert proc.returncode == 2 and "Traceback" not in err, (argv, name, value, err)
        assert len(errors) == 1 and err.endswith(errors[0] + "\n"), (argv, name, err)  # after the usage
        flag_or_var = {name, f"--{name.removeprefix('NODEAUTHZ_').lower().replace('_', '-')}"}
        assert any(n in errors[0] for n in flag_or_var), (name, errors[0])


@pytest.mark.parametrize(
    ("env", "argv", "says"),
    [
        # A variable sets a flag that Settings does not hold (read by the command itself).
        ({"NODEAUTHZ_LEASE_DURATION": "2"}, ["sync"], "--lease-duration must be at least 3 seconds"),
        ({"NODEAUTHZ_RESOURCES": "pods,bogus"}, ["sync"], "--resources: unknown bogus"),
        # The flag wins over the variable: with --workers 1 the next check (the TLS file) is reached.
        ({"NODEAUTHZ_WORKERS": "2"}, ["serve", "--health-port", "9"], "--health-port needs --workers 1"),
        (
            {"NODEAUTHZ_WORKERS": "2"},
            [
                "serve",
                "--health-port",
                "9",
                "--workers",
                "1",
                "--tls-cert",
                "/nonexistent.crt",
                "--tls-key",
                "/k",
            ],
            "--tls-cert /nonexistent.crt: No such file or directory",
        ),
        ({"NODEAUTHZ_PORT": "x"}, ["serve"], "NODEAUTHZ_PORT: invalid int value 'x' (for --port)"),
        ({"NODEAUTHZ_MIGRATE": "maybe"}, ["sync"], "NODEAUTHZ_MIGRATE: expected true or false, got 'maybe'"),
    ],
)
def test_a_variable_sets_its_flag_and_the_flag_wins(env: dict[str, str], argv: list[str], says: str) -> None:
    out = subprocess.run(
        [nodeauthz_script(), "--database-url", "sqlite:////nonexistent/graph.db", *argv],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.splitlines()[-1].startswith(f"nodeauthz: error: {says}"), (
        out.stderr
    )


def test_a_variable_for_another_command_does_not_stop_this_one(tmp_path: Path) -> None:
    out = subprocess.run(
        [nodeauthz_script(), "--database-url", f"sqlite:///{tmp_path}/graph.db", "migrate"],
        env={**os.environ, "NODEAUTHZ_PORT": "not-a-port"}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
