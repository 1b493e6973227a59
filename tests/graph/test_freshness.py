"""The freshness rule for standby reads, on a clock of the test's own (``app.graph.freshness``)."""

from __future__ import annotations

import pytest

from app.graph.freshness import Position, PrimaryHistory, Sample, StaleRead, parse_lsn

BOUND = 5.0


def history(*samples: tuple[float, int], timeline: int = 1) -> PrimaryHistory:
    h = PrimaryHistory(keep=30.0)
    for at, lsn in samples:
        h.record(Sample(at=at, lsn=lsn, timeline=timeline))
    return h


def standby(lsn: int) -> Position:
    return Position(lsn=lsn, timeline=None, in_recovery=True)


def test_parse_lsn() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


def test_a_standby_that_replayed_the_oldest_position_within_the_bound_is_fresh() -> None:
    h = history((100.0, 10), (103.0, 20), (106.0, 30), (109.0, 40))
    # At 110 the oldest sample within 5 s is the one of 106 (lsn 30).
    h.check(standby(30), now=110.0, bound=BOUND)
    with pytest.raises(StaleRead, match=r"the read replica is 7\.0s behind the primary \(bound 5s\)"):
        h.check(standby(29), now=110.0, bound=BOUND)


def test_an_idle_primary_keeps_a_caught_up_standby_fresh() -> None:
    h = history(*((100.0 + i, 500) for i in range(20)))
    h.check(standby(500), now=120.0, bound=BOUND)
    assert h.lag(standby(500), now=120.0) == pytest.approx(1.0)


def test_no_recent_position_from_the_primary_is_never_fresh() -> None:
    h = history((100.0, 10))
    with pytest.raises(StaleRead, match="primary's position was last heard 10.0s ago"):
        h.check(standby(10), now=110.0, bound=BOUND)
    with pytest.raises(StaleRead, match="not heard from yet"):
        PrimaryHistory(keep=30.0).check(standby(10), now=1.0, bound=BOUND)


def test_a_promoted_standby_on_another_timeline_is_never_fresh_whatever_its_position() -> None:
    h = history((100.0, 10), (104.0, 20), timeline=1)
    promoted = Position(lsn=1_000, timeline=2, in_recovery=False)
    with pytest.raises(StaleRead, match="timeline 2, the primary on 1: it was promoted"):
        h.check(promoted, now=105.0, bound=BOUND)
    assert h.lag(promoted, now=105.0) is None
    # Reading the primary itself (same timeline) is always fresh.
    h.check(Position(lsn=20, timeline=1, in_recovery=False), now=105.0, bound=BOUND)


def test_a_failover_forgets_the_old_timeline() -> None:
    h = history((100.0, 900), (101.0, 950), timeline=1)
    h.record(Sample(at=102.0, lsn=400, timeline=2))  # the new primary restarts from its own replay point
    h.check(Position(lsn=400, timeline=2, in_recovery=False), now=103.0, bound=BOUND)


def test_behind_every_sample_held_says_so() -> None:
    h = history((100.0, 10), (103.0, 20))
    with pytest.raises(StaleRead, match="more than 30s behind"):
        h.check(standby(5), now=104.0, bound=BOUND)
