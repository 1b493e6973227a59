"""The writer's fence: the lease epoch every write transaction re-checks before it commits.

``app.ha`` elects the writer and hands out fences; the store checks them. The
check runs first in the write transaction and fails if another replica took
the lease since. It also keeps a takeover from committing while the
transaction is open, without making the holder's renewals wait for it; how
depends on the database (``DialectImpl.check_fence``): PostgreSQL takes the
lease row FOR KEY SHARE, which a takeover's FOR UPDATE waits for and a
renewal does not; on SQLite every writer queues on the database lock anyway,
so there the check also renews the lease (a busy writer renews by writing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from app.graph.dialects import for_name


class LeaseLost(RuntimeError):
    """This writer's lease epoch is no longer current: another replica is the writer."""


@dataclass(frozen=True)
class Fence:
    lease: str
    holder: str
    epoch: int
    # The lease's terms, for the writes that renew it (SQLite); not part of the fence's identity.
    duration: float = field(default=0.0, compare=False)
    clock: Callable[[], float] | None = field(default=None, compare=False, repr=False)


# The writer's current fence; raises LeaseLost when this process is not the writer. A store is built
# with one, so "no fence" cannot mean "write unchecked": it means "do not write".
FenceSource = Callable[[], Fence]


def fixed_fence(fence: Fence) -> FenceSource:
    """A source that always offers ``fence`` (one-shot writers: ``load``, ``demo``, tests)."""
    return lambda: fence


def check_fence_locked(conn: Connection, fence: Fence) -> None:
    """Raise LeaseLost unless ``fence`` still holds the lease (inside the write transaction)."""
    held = for_name(conn.dialect.name).check_fence(
        conn,
        lease=fence.lease,
        holder=fence.holder,
        epoch=fence.epoch,
        duration=fence.duration,
        clock=fence.clock,
    )
    if not held:
        raise LeaseLost(f"lease {fence.lease!r} epoch {fence.epoch} is no longer held by {fence.holder!r}")
