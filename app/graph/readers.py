"""Opening the request path's reader for a database URL (the implementations: ``app.graph.dialects``)."""

from __future__ import annotations

from app.graph.database import resolve_url
from app.graph.dialects import for_url
from app.graph.reach import Reader
from app.graph.standby import ReadReplica, StandbyReader

# How long a check may wait on the database (a lock, a stalled server) before it fails: the
# kube-apiserver gives a webhook a few seconds at most, and a failed check answers no-opinion.
DEFAULT_READ_TIMEOUT_S = 1.0


async def open_reader(
    url: str | None,
    *,
    pool_size: int = 1,
    timeout: float = DEFAULT_READ_TIMEOUT_S,
    replica: ReadReplica | None = None,
) -> Reader:
    """The reader for a database URL (resolved like every other command's).

    ``pool_size`` bounds its connections; ``timeout`` bounds how long one check may wait on the
    database (connecting, locks, a stalled server) before it raises. With ``replica`` the URL is a
    PostgreSQL standby whose every check is verified fresh (``app.graph.standby``).
    """
    resolved = resolve_url(url)
    if replica is not None:
        return await StandbyReader.open_standby(resolved, replica, pool_size=pool_size, timeout=timeout)
    return await for_url(resolved).open_reader(resolved, pool_size=pool_size, timeout=timeout)
