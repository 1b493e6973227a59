"""How a command fails: exit 2 with one line on stderr, never a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments found after parsing (exit 2, like argparse's own errors; the usage line is shown)."""


class CommandError(Exception):
    """The command cannot run as asked (exit 2): one line saying why and what to do."""
