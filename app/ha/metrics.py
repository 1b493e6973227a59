"""Which replica writes: the leader flag and the lease epoch, from the writer process."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.telemetry.prometheus import NAMESPACE

if TYPE_CHECKING:
    from prometheus_client import Gauge


@dataclass(frozen=True)
class LeaderMetrics:
    is_leader: Gauge
    epoch: Gauge


@functools.cache
def leader_metrics() -> LeaderMetrics:
    from prometheus_client import Gauge

    return LeaderMetrics(
        is_leader=Gauge(
            "writer_is_leader",
            "1 while this replica's writer holds the writer lease, else 0",
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
        epoch=Gauge(
            "writer_epoch",
            "The lease epoch this replica's writer last held (0: never)",
            namespace=NAMESPACE,
            multiprocess_mode="mostrecent",
        ),
    )
