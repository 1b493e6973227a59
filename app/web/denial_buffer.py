"""The denial report's buffer: refusals counted in memory on the request path, written in the background.

``add`` is a dictionary update on a tuple key with float timestamps (no I/O, no lock: the event
loop is the only caller; about 1 us), so recording a refusal never slows a check. A background task (``run``) hands the tallies to
``app.graph.denials.record_denials`` every flush interval, in a worker thread, and applies the
retention limit every ``PRUNE_INTERVAL_S``. The buffer holds at most ``capacity`` distinct refusals;
a new one beyond that is dropped and counted (``nodeauthz_denials_dropped_total``), as is a batch
whose write failed. Repeats of a refusal already held only add to its count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from app.graph.denials import DenialKey, Tally, prune_denials, record_denials
from app.telemetry.prometheus import database_errors
from app.web.metrics import webhook_metrics

LOG = logging.getLogger("nodeauthz.denials")
PRUNE_INTERVAL_S = 600.0


class DenialBuffer:
    def __init__(self, engine: Engine, *, capacity: int, flush_interval: float, retention: timedelta) -> None:
        self.engine = engine
        self.capacity = capacity
        self.flush_interval = flush_interval
        self.retention = retention
        self.dropped = 0
        self._pending: dict[DenialKey, list[float]] = {}  # key -> [count, first seen, last seen]
        self._metrics = webhook_metrics()
        self._pruned_at = float("-inf")

    def add(self, key: DenialKey) -> None:
        """Count one refusal (on the request path: never blocks, never raises)."""
        now = time.time()
        entry = self._pending.get(key)
        if entry is not None:
            entry[0] += 1
            entry[2] = now
        elif len(self._pending) < self.capacity:
            self._pending[key] = [1, now, now]
        else:
            self.dropped += 1
            self._metrics.denials_dropped.inc()

    async def flush(self) -> None:
        """Write what is buffered (and prune, when due); a failure drops the batch and counts it."""
        pending, self._pending = self._pending, {}
        batch = {key: _tally(*entry) for key, entry in pending.items()}
        if batch:
            try:
                await asyncio.to_thread(record_denials, self.engine, batch)
            except Exception as exc:  # noqa: BLE001 - the report is best effort; checks go on
                lost = sum(t.count for t in batch.values())
                self.dropped += lost
                self._metrics.denials_dropped.inc(lost)
                database_errors().labels("denial_flush").inc()
                LOG.warning("denial report: dropped %d refusals: %s: %s", lost, type(exc).__name__, exc)
            else:
                self._metrics.denials_recorded.inc(sum(t.count for t in batch.values()))
        if time.monotonic() - self._pruned_at >= PRUNE_INTERVAL_S:
            self._pruned_at = time.monotonic()
            cutoff = datetime.now(UTC) - self.retention
            try:
                removed = await asyncio.to_thread(prune_denials, self.engine, cutoff)
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                database_errors().labels("denial_prune").inc()
                LOG.warning("denial report: pruning failed: %s: %s", type(exc).__name__, exc)
            else:
                if removed:
                    LOG.info("denial report: removed %d rows not seen since %s", removed, cutoff.isoformat())

    async def run(self) -> None:
        """Flush every interval until cancelled; a final flush is the caller's (``close``)."""
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        self.engine.dispose()


def _tally(count: float, first: float, last: float) -> Tally:
    return Tally(int(count), datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC))
