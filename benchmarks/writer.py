"""A graph store for benchmark loaders: every write needs a current fence, so the loader takes the lease.

The lease is taken for a few seconds and not renewed: the fence stays valid for as long as no
other writer takes over (the store checks the epoch, not the expiry), and the next step of a
benchmark run can take the lease soon after this one is done.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine

from app.graph.fence import fixed_fence
from app.graph.store import GraphStore
from app.ha.lease import LeaseManager
from app.ha.lease_record import unique_holder

LEASE_SECONDS = 5.0
WAIT_SECONDS = 30.0


def benchmark_store(engine: Engine, name: str) -> GraphStore:
    manager = LeaseManager(engine, holder=unique_holder(name), duration=LEASE_SECONDS)
    deadline = time.monotonic() + WAIT_SECONDS
    while (fence := manager.try_acquire()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: the writer lease is held by {manager.current()}; is a writer running?")
        time.sleep(0.5)
    return GraphStore(engine, fence=fixed_fence(fence))
