"""What a graph write reports: its sync mark going in, and what it changed coming out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyncMark:
    """The resourceVersion the graph reflects for ``resource`` once this write commits."""

    resource: str
    resource_version: str


@dataclass
class ApplyResult:
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    # What the committed transaction changed: objects by kind and edges (the writer's counts).
    object_delta: Counter[str] = field(default_factory=Counter)
    edge_delta: int = 0

    def add(self, other: ApplyResult) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.object_delta.update(other.object_delta)
        self.edge_delta += other.edge_delta
