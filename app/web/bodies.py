"""Request bodies and JSON responses, shared by the webhook endpoints."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class BodyRefused(ValueError):
    """The body is over the endpoint's limit or its length is malformed; the message suits an HTTP 400."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them (header, then stream)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BodyRefused("invalid Content-Length")
        if int(length) > limit:
            raise BodyRefused(f"request body is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
