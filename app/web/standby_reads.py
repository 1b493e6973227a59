"""What a webhook worker holds when it reads from a standby (``--read-database-url``).

One ``ReadReplica`` (the primary's recent positions and the bound), the task
that samples the primary, and NodeRestriction's look-ups on a small engine of
the standby. Checks read through the ``ReaderSlot``, which opens a
``StandbyReader`` with the same ``ReadReplica``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from app.graph.database import make_read_engine
from app.graph.lookups import Authorizer
from app.graph.standby import FreshLookups, PrimarySampler, ReadReplica
from app.web.settings import Settings


@dataclass(frozen=True)
class StandbyReads:
    replica: ReadReplica
    sampler: PrimarySampler
    engine: Engine  # the standby's, for admission look-ups

    @classmethod
    def create(cls, settings: Settings) -> StandbyReads:
        assert settings.read_database_url is not None
        replica = ReadReplica(settings.max_read_lag)
        engine = make_read_engine(settings.read_database_url, pool_size=2)
        return cls(
            replica=replica,
            sampler=PrimarySampler(settings.database_url, replica, timeout=settings.check_timeout),
            engine=engine,
        )

    def lookups(self, authorizer: Authorizer) -> FreshLookups:
        """NodeRestriction's look-ups on the standby, asking ``authorizer`` what the graph cannot answer."""
        return FreshLookups(self.engine, self.replica, authorizer)

    async def run(self) -> None:
        """Sample the primary until cancelled (a lifespan task)."""
        await self.sampler.run()

    def close(self) -> None:
        self.engine.dispose()
