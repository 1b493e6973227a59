"""Opening the request path's reader for a database URL (the implementations: ``app.graph.dialects``)."""

from __future__ import annotations

from app.graph.database import resolve_url
from app.graph.dialects import for_url
from app.graph.reach import Reader


async def open_reader(url: str | None, *, pool_size: int) -> Reader:
    """The reader for a database URL (resolved like every other command's); ``pool_size`` bounds connections."""
    resolved = resolve_url(url)
    return await for_url(resolved).open_reader(resolved, pool_size=pool_size)
