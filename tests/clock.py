"""A clock the test moves by hand, so lease expiry is decided by the test, not by sleeping."""

from __future__ import annotations

T0 = 1_800_000_000.0


class FakeClock:
    """Shared by every manager in a test; callable like ``time.time``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
