"""How a check that could not be made is described: the same words for /authorize and /admit."""

from __future__ import annotations


def failure_cause(exc: BaseException, timeout: float) -> str:
    """``no answer from the database within 1s`` for a deadline, else the error's type (no detail:
    the reason goes back to the API server and into its audit log; the detail goes to our log)."""
    if isinstance(exc, TimeoutError):
        return f"no answer from the database within {timeout:g}s"
    return type(exc).__name__
