"""What NodeRestriction needs to know beyond the request: existing pods and nodes.

The rules ask through ``AdmissionLookups``; ``app.graph.lookups`` answers from
the store (namespace, name, uid and node of each pod; name and uid of each node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    uid: str
    node_name: str  # "" when unbound


class AdmissionLookups(Protocol):
    def pod(self, namespace: str, name: str) -> PodRecord | None: ...

    def node_uid(self, name: str) -> str | None: ...
