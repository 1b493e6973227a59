"""Graph stores for tests: every write needs a current fence, so a test writer holds the lease."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine

from app.graph.derivation import derive
from app.graph.fence import Fence, fixed_fence
from app.graph.store import GraphStore
from app.graph.write_results import ApplyResult
from app.ha.lease import LeaseManager
from app.k8s.admission_facts import derive_facts
from app.sync.files import LoadedFile, apply_loaded

TEST_LEASE_SECONDS = 3600.0  # never expires within a test


def fenced(engine: Engine, fence: Fence) -> GraphStore:
    """A store that writes under ``fence`` (which may be stale: the store must then refuse)."""
    return GraphStore(engine, fence=fixed_fence(fence))


def lease_holding_store(engine: Engine, holder: str = "test") -> GraphStore:
    """A store whose writer holds the database's writer lease for the rest of the test."""
    fence = LeaseManager(engine, holder=holder, duration=TEST_LEASE_SECONDS).try_acquire()
    assert fence is not None, "the writer lease is already held by another test writer"
    return fenced(engine, fence)


def apply_raw(store: GraphStore, objs: Iterable[Mapping[str, Any]]) -> ApplyResult:
    """Apply raw objects as the sync worker does: NodeRestriction's facts, then the graph rows."""
    loaded = LoadedFile("test")
    for obj in objs:
        derived = derive(obj)
        loaded.objects.append(derived)
        facts = derive_facts(derived.kind, obj)
        if facts is not None:
            loaded.facts.append((derived.key, facts))
    return apply_loaded(store, loaded)
