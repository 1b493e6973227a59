"""Every configuration flag has an environment variable: the one its help names (``env NODEAUTHZ_...``).

The help text is the single place a flag's variable is declared, so ``--help``, this module and the
README's table (kept in step by ``tests/cli/test_env_flags.py``) cannot disagree. A set variable
becomes the flag's default (the command line still wins); a value that does not parse, or is not
one of the flag's choices, is refused before the command does anything: one line naming the
variable, exit 2. Only the chosen command's flags (and the global ones) are checked, so a variable
meant for ``serve`` never stops ``stats``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Mapping
from typing import Any

from app.web.settings import parse_bool

ENV_IN_HELP = re.compile(r"\benv (NODEAUTHZ_[A-Z0-9_]+|KUBECONFIG)\b")
# Read by their own code, with their own one-line errors (a URL's dialect check, upstream's gate
# messages, which also merge the variable with the flag; the log options, set up before any command):
# KUBECONFIG, which the Kubernetes client reads as a list of files): this layer leaves them alone.
READ_ELSEWHERE = frozenset({"database_url", "feature_gates", "log_level", "log_format", "kubeconfig"})
GLOBAL = ""


def env_var(action: argparse.Action) -> str | None:
    """The variable a flag's help names, if any."""
    match = ENV_IN_HELP.search(action.help or "") if action.help is not argparse.SUPPRESS else None
    return match.group(1) if match else None


def command_parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The top-level parser (as ``GLOBAL``) and each command's parser, by command name."""
    yield GLOBAL, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _convert(action: argparse.Action, text: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        value: Any = parse_bool(text)
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    convert = action.type if callable(action.type) else str
    try:
        value = convert(text)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        kind = getattr(convert, "__name__", "")
        raise ValueError(f"invalid {kind + ' ' if kind in ('int', 'float') else ''}value {text!r}") from None
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value


def apply_env_defaults(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> dict[str, list[str]]:
    """Set variables become the defaults of their flags; returns the problems, by command (``GLOBAL``)."""
    problems: dict[str, list[str]] = {}
    for command, sub in command_parsers(parser):
        for action in sub._actions:
            name = env_var(action)
            text = env.get(name) if name else None
            if not name or not text or action.dest in READ_ELSEWHERE:
                continue
            try:
                sub.set_defaults(**{action.dest: _convert(action, text)})
            except ValueError as exc:
                problems.setdefault(command, []).append(f"{name}: {exc} (for {action.option_strings[0]})")
    return problems
