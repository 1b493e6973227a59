"""The request path's reader, opened at startup or, if the database was down then, by a later request."""

from __future__ import annotations

import asyncio
import time

from app.graph.reach import Reader
from app.graph.readers import open_reader
from app.graph.standby import ReadReplica

REOPEN_INTERVAL_S = 1.0  # how often a failed database connection is retried by requests


class ReaderSlot:
    """Holds one reader; a failed open is retried at most every ``REOPEN_INTERVAL_S`` by requests."""

    def __init__(
        self,
        database_url: str,
        pool_size: int,
        timeout: float,
        reader: Reader | None = None,
        replica: ReadReplica | None = None,  # database_url is a standby, judged by it
    ) -> None:
        self.database_url = database_url
        self.replica = replica
        self.pool_size = pool_size
        self.timeout = timeout
        self.reader = reader
        self.owned = reader is None
        self._lock = asyncio.Lock()
        self._last_error: BaseException | None = None
        self._retry_at = 0.0

    async def get(self) -> Reader:
        if self.reader is not None:
            return self.reader
        async with self._lock:
            if self.reader is None:
                if self._last_error is not None and time.monotonic() < self._retry_at:
                    raise self._last_error
                try:
                    self.reader = await open_reader(
                        self.database_url,
                        pool_size=self.pool_size,
                        timeout=self.timeout,
                        replica=self.replica,
                    )
                except Exception as exc:
                    self._last_error, self._retry_at = exc, time.monotonic() + REOPEN_INTERVAL_S
                    raise
            return self.reader

    async def close(self) -> None:
        if self.owned and self.reader is not None:
            reader, self.reader = self.reader, None
            await reader.close()
