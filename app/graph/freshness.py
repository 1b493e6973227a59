"""How far behind the primary a read replica (a PostgreSQL hot standby) may be, judged without clocks.

The question a check must answer before it reads a standby: does this
connection see every transaction the primary had committed ``bound`` seconds
ago? It is answered with WAL positions and one clock, this process's monotonic one:

- a sampler asks the primary for its WAL flush position every fraction of a
  second and records ``(t, lsn, timeline)`` with ``t`` taken *before* it sent the
  question, so every transaction acknowledged before ``t`` lies at or below ``lsn``;
- a standby connection reports the position it has replayed (a primary, or a
  promoted standby, its own flush position and timeline);
- the connection is fresh enough when it has replayed the oldest sample taken
  within the last ``bound`` seconds (on the primary's current timeline). Then it
  holds everything committed before ``now - bound``: the answer is stale by at
  most ``bound``.

No timestamp from another host takes part: a drifting clock on the primary or
the standby cannot make a stale standby look fresh (``pg_last_xact_replay_timestamp()``
would both compare two hosts' clocks and grow on an idle primary). An idle
primary's position stands still, so a caught-up standby stays fresh. Positions
on different timelines are not comparable (a promoted standby restarts from its
own replay point): a connection on another timeline than the primary's is never fresh.

Pure: no I/O. The sampler and the readers live in ``app.graph.standby``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["Position", "PrimaryHistory", "Sample", "StaleRead", "parse_lsn"]


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``pg_lsn`` text (``16/B374D848``) as a byte offset."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Position:
    """What a connection has replayed: its WAL position, and its timeline when it is not in recovery
    (PostgreSQL 15 does not say which timeline a standby replays without extra privileges)."""

    lsn: int
    timeline: int | None
    in_recovery: bool


@dataclass(frozen=True)
class Sample:
    at: float  # this process's monotonic clock, read before the question was sent
    lsn: int
    timeline: int


def _at(sample: Sample) -> float:
    return sample.at


class StaleRead(Exception):  # noqa: N818 - reads as the condition it reports
    """The read replica cannot be shown to be within the bound. The message is safe to send back
    to the API server: it names no host, only lags and bounds."""


class PrimaryHistory:
    """The primary's recent positions, thread-safe (admission lookups judge from worker threads)."""

    def __init__(self, keep: float) -> None:
        self._keep = keep
        self._samples: list[Sample] = []  # oldest first: ``at`` ascending
        self._lock = threading.Lock()

    def record(self, sample: Sample) -> None:
        with self._lock:
            if self._samples and self._samples[-1].timeline != sample.timeline:
                self._samples.clear()  # a failover: older positions are not comparable
            self._samples.append(sample)
            expired = bisect_left(self._samples, sample.at - self._keep, key=_at)
            if expired > len(self._samples) // 2:  # trim in bulk, not one sample per record
                del self._samples[:expired]

    def target(self, now: float, bound: float) -> Sample:
        """The position a connection must have replayed to be at most ``bound`` seconds stale.

        Raises ``StaleRead`` when the primary has not been heard from within the bound.
        """
        with self._lock:  # every check asks: a binary search, not a walk
            first = bisect_left(self._samples, now - bound, key=_at)
            if first < len(self._samples):
                return self._samples[first]
            newest = self._samples[-1] if self._samples else None
        heard = f"last heard {now - newest.at:.1f}s ago" if newest else "not heard from yet"
        raise StaleRead(
            f"cannot tell how far the read replica is behind: the primary's position was {heard} "
            f"(bound {bound:g}s)"
        )

    def lag(self, position: Position, now: float) -> float | None:
        """At most how many seconds ``position`` is behind the primary; None when it is behind every
        sample held (more than ``keep`` seconds) or on another timeline."""
        with self._lock:
            samples = self._samples[bisect_left(self._samples, now - self._keep, key=_at) :]
        if not samples or (position.timeline is not None and position.timeline != samples[-1].timeline):
            return None
        reached = [s for s in samples if s.lsn <= position.lsn]
        if not reached:
            return None
        # It holds everything committed before the newest sample it has reached was taken.
        return now - reached[-1].at

    def check(self, position: Position, now: float, bound: float) -> None:
        """Raise ``StaleRead`` unless ``position`` is within ``bound`` seconds of the primary."""
        target = self.target(now, bound)
        if position.timeline is not None and position.timeline != target.timeline:
            raise StaleRead(
                f"the read replica is on timeline {position.timeline}, the primary on {target.timeline}: "
                "it was promoted and no longer follows the primary"
            )
        if position.lsn < target.lsn:
            lag = self.lag(position, now)
            behind = f"{lag:.1f}s" if lag is not None else f"more than {self._keep:g}s"
            raise StaleRead(f"the read replica is {behind} behind the primary (bound {bound:g}s)")
