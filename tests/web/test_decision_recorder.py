"""Held-back counts published in bulk show exactly what observing each value would have shown."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from app.telemetry.prometheus import DURATION_BUCKETS
from app.web.decision_recorder import LocalHistogram, _publish_histogram

# On, between and beyond the bounds: 0.0001 is "le 0.0001", 7.0 only "+Inf".
VALUES = [0.00005, 0.0001, 0.00011, 0.003, 0.003, 0.25, 0.2500001, 4.99, 5.0, 7.0, 0.0]


def test_bulk_publish_equals_one_observe_per_value() -> None:
    direct, bulk = CollectorRegistry(), CollectorRegistry()
    one_by_one = Histogram("h", "h", ["webhook"], buckets=DURATION_BUCKETS, registry=direct)
    published = Histogram("h", "h", ["webhook"], buckets=DURATION_BUCKETS, registry=bulk)
    local = LocalHistogram()
    for v in VALUES:
        one_by_one.labels("authorize").observe(v)
        local.observe(v)
    _publish_histogram(published.labels("authorize"), local)
    strip = lambda text: [line for line in text.decode().splitlines() if "_created" not in line]  # noqa: E731
    assert strip(generate_latest(bulk)) == strip(generate_latest(direct))
    assert 'h_bucket{le="0.0001",webhook="authorize"} 3.0' in generate_latest(bulk).decode()
