"""Readiness of a replica that reads from a standby: the usual checks, plus the standby's lag.

The usual checks (database, schema, writer, sync state) stay on the primary,
where the writer's lease and sync marks are judged by one clock. The standby
adds ``read_replica``: one of the reader's connections is asked for its
position now and judged by the same rule as every check
(``app.graph.freshness``): not ready once it is further behind than the bound,
when the primary's position cannot be read, or when it was promoted away from
the primary. With several standbys behind one name, a probe judges the one its
connection reached; every check judges its own anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.graph.freshness import StaleRead
from app.graph.reach import Reader
from app.graph.standby import ReadReplica, StandbyReader
from app.ha.readiness import OK, ReadinessReport

LOG = logging.getLogger("nodeauthz.readiness")

READ_REPLICA = "read_replica"


async def read_replica_problem(
    get_reader: Callable[[], Awaitable[Reader]], replica: ReadReplica, timeout: float
) -> str | None:
    """None when the standby answers within the bound; else what is wrong, without hosts or users."""
    try:
        async with asyncio.timeout(timeout):
            reader = await get_reader()
            if not isinstance(reader, StandbyReader):
                return None  # a reader handed in by a test: nothing to judge
            position = await reader.position()
        replica.check(position)
    except StaleRead as exc:
        return str(exc)
    except TimeoutError:
        return f"unreachable: no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not crash
        LOG.warning("readiness: read replica: %s: %s", type(exc).__name__, exc)
        return f"unreachable: {type(exc).__name__} (details in the log)"
    return None


def with_read_replica(
    base: Callable[[], Awaitable[ReadinessReport]],
    get_reader: Callable[[], Awaitable[Reader]],
    replica: ReadReplica,
    timeout: float,
) -> Callable[[], Awaitable[ReadinessReport]]:
    """``base`` readiness with the ``read_replica`` check added; both asked at once."""

    async def readiness() -> ReadinessReport:
        report, problem = await asyncio.gather(base(), read_replica_problem(get_reader, replica, timeout))
        checks = {**report.checks, READ_REPLICA: problem or OK}
        return ReadinessReport(ready=report.ready and problem is None, checks=checks)

    return readiness
