"""What NodeRestriction needs to know beyond the request: stored objects, and the API server's authorizer.

The rules ask through ``AdmissionLookups``; ``app.graph.lookups`` answers from
the store (namespace, name, uid and node of each pod; name and uid of each
node and service account; the facts of ``app.k8s.admission_facts``) and sends
authorization questions to the API server (a SubjectAccessReview).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from app.k8s.admission_facts import PodFacts


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    node_name: str  # "" when unbound


@dataclass(frozen=True)
class AccessQuestion:
    """Upstream's ``authorizer.AttributesRecord`` for a resource request, with the requesting user."""

    user: str
    groups: tuple[str, ...]
    uid: str
    extra: Mapping[str, tuple[str, ...]]
    verb: str
    namespace: str
    api_group: str
    api_version: str
    resource: str
    name: str


@dataclass(frozen=True)
class AccessAnswer:
    """``allowed``; ``error`` is why the authorizer could not decide ("" when it did)."""

    allowed: bool
    reason: str = ""
    error: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


class AdmissionLookups(Protocol):
    def pod(self, namespace: str, name: str) -> PodRecord | None: ...

    def node_uid(self, name: str) -> str | None: ...

    # The facts below raise (fail closed) when an object is stored without them.
    def pod_facts(self, record: PodRecord) -> PodFacts: ...

    def service_account_uid(self, namespace: str, name: str) -> str | None: ...

    def pvc_volume_name(self, namespace: str, name: str) -> str | None: ...

    def pv_csi_driver(self, name: str) -> str | None: ...

    def csidriver_audiences(self, name: str) -> tuple[str, ...] | None: ...

    def authorize(self, question: AccessQuestion) -> AccessAnswer: ...
