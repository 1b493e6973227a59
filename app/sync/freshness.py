"""Event arrival -> commit lag of the sync worker: a bounded window of recent samples, and its quantiles."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

LAG_SAMPLES = 10_000


@dataclass(frozen=True)
class Freshness:
    """Event arrival -> commit lag over the recent samples, in seconds (None without samples)."""

    samples: int
    p50: float | None
    p99: float | None


class LagWindow:
    """The last ``LAG_SAMPLES`` lags; added from informer threads, read from any thread."""

    def __init__(self, size: int = LAG_SAMPLES) -> None:
        self._lags: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def extend(self, lags: Iterable[float]) -> None:
        with self._lock:
            self._lags.extend(lags)

    def freshness(self) -> Freshness:
        with self._lock:
            lags = sorted(self._lags)
        if not lags:
            return Freshness(0, None, None)
        return Freshness(len(lags), _quantile(lags, 0.50), _quantile(lags, 0.99))


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
