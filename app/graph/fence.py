"""The writer's fence: the lease epoch every write transaction re-checks before it commits.

``app.ha`` elects the writer and hands out fences; the store checks them. The
check is an UPDATE of the lease row matching (name, holder, epoch), run first
in the write transaction: it fails if another replica took the lease since,
and on PostgreSQL it row-locks the lease, so a takeover waits for this
transaction to finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, update

from app.graph.schema import writer_lease


class LeaseLost(RuntimeError):
    """This writer's lease epoch is no longer current: another replica is the writer."""


@dataclass(frozen=True)
class Fence:
    lease: str
    holder: str
    epoch: int


# The writer's current fence; raises LeaseLost when this process is not the writer. A store is built
# with one, so "no fence" cannot mean "write unchecked": it means "do not write".
FenceSource = Callable[[], Fence]


def fixed_fence(fence: Fence) -> FenceSource:
    """A source that always offers ``fence`` (one-shot writers: ``load``, ``demo``, tests)."""
    return lambda: fence


def check_fence_locked(conn: Connection, fence: Fence) -> None:
    """Raise LeaseLost unless ``fence`` still holds the lease (inside the write transaction)."""
    stmt = (
        update(writer_lease)
        .where(
            writer_lease.c.name == fence.lease,
            writer_lease.c.holder == fence.holder,
            writer_lease.c.epoch == fence.epoch,
        )
        .values(holder=writer_lease.c.holder)
    )
    if conn.execute(stmt).rowcount != 1:
        raise LeaseLost(f"lease {fence.lease!r} epoch {fence.epoch} is no longer held by {fence.holder!r}")
