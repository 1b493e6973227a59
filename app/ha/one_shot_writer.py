"""The writer lease for a one-shot writer (``load``, ``demo``): taken for one write, then released."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from app.graph.fence import Fence
from app.ha.lease import LeaseManager
from app.ha.lease_record import DEFAULT_LEASE


class LeaseHeld(RuntimeError):
    """Another process holds the writer lease: a writer is syncing this database."""


@contextmanager
def hold_lease(
    engine: Engine, holder: str, *, name: str = DEFAULT_LEASE, duration: float = 15.0
) -> Iterator[Fence]:
    """The writer lease for a one-shot writer (``load``, ``demo``), released on exit.

    Raises LeaseHeld when a live writer holds it: a file loaded into a database that a
    writer is syncing would be overwritten (or would overwrite the cluster's truth).
    """
    manager = LeaseManager(engine, name=name, holder=holder, duration=duration)
    fence = manager.try_acquire()
    if fence is None:
        current = manager.current()
        who = f"{current.holder} (epoch {current.epoch})" if current else "another writer"
        raise LeaseHeld(f"the writer lease is held by {who}: a writer is syncing this database")
    try:
        yield fence
    finally:
        manager.release(fence)
