"""Graph stores for tests: every write needs a current fence, so a test writer holds the lease."""

from __future__ import annotations

from sqlalchemy import Engine

from app.graph.fence import Fence, fixed_fence
from app.graph.store import GraphStore
from app.ha.lease import LeaseManager

TEST_LEASE_SECONDS = 3600.0  # never expires within a test


def fenced(engine: Engine, fence: Fence) -> GraphStore:
    """A store that writes under ``fence`` (which may be stale: the store must then refuse)."""
    return GraphStore(engine, fence=fixed_fence(fence))


def lease_holding_store(engine: Engine, holder: str = "test") -> GraphStore:
    """A store whose writer holds the database's writer lease for the rest of the test."""
    fence = LeaseManager(engine, holder=holder, duration=TEST_LEASE_SECONDS).try_acquire()
    assert fence is not None, "the writer lease is already held by another test writer"
    return fenced(engine, fence)
