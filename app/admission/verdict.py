"""What NodeRestriction answers, and the two ways a rule refuses. Pure, no I/O.

A rule raises ``Forbidden(reason)`` (upstream's ``admission.NewForbidden``) or
``NotFound(resource, name)`` (a lister's NotFound returned as is);
``app.admission.restriction`` turns either into a ``Verdict`` with upstream's full text.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.k8s.goquote import go_quote

# Appended to a NotFound: the store, not the API server, had no record.
NOT_IN_STORE = " (no record in the nodeauthz store)"


@dataclass(frozen=True)
class Verdict:
    """``code`` is the HTTP status of a refusal: 403 Forbidden, or 404 for upstream's NotFound."""

    allowed: bool
    message: str = ""
    code: int = 403


ALLOWED = Verdict(True)


class Forbidden(Exception):
    """Upstream ``admission.NewForbidden(a, errors.New(reason))``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(Exception):
    """Upstream returning a lister's NotFound as is: ``<resource> "<name>" not found``."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} {go_quote(name)} not found")
        self.resource = resource
        self.name = name


class Retryable(Exception):
    """Upstream returning a plain error, not Forbidden, because informer lag may cause it and a retry may
    succeed: the message as is, with ``code`` 404 (an object not found) or 500 (the API server's
    InternalError for a plain error)."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
