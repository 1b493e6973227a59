"""How a check that could not be made is described: the same words for /authorize and /admit."""

from __future__ import annotations

from app.graph.freshness import StaleRead


def failure_cause(exc: BaseException, timeout: float) -> str:
    """``no answer from the database within 1s`` for a deadline, a standby's lag when it is too far behind
    (``app.graph.freshness``), else the error's type (no detail:
    the reason goes back to the API server and into its audit log; the detail goes to our log)."""
    if isinstance(exc, StaleRead):  # lags and bounds only: safe to send back
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer from the database within {timeout:g}s"
    return type(exc).__name__
