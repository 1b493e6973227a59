"""``POST /authorize`` served straight off ASGI, ahead of Starlette's router.

Every SubjectAccessReview goes through here, so the per-request work of the framework (routing
over every route, the exception middleware, ``Request``/``Response`` objects, the body stream)
was a large share of a check's cost: measured in-process, about a third of the request. This
path reads the body off ``receive`` with the same limit (Content-Length first, then as it streams),
answers with ``Authorizer`` (``app.web.authorize``) and sends two messages. Everything else,
``/authorize`` with another method included, goes to the Starlette app unchanged.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from app.authz.subject_access_review import MAX_REVIEW_BYTES
from app.web.authorize import Authorizer
from app.web.bodies import BodyRefused

PATH = "/authorize"
_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before sending the whole body: there is nobody to answer."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes before reading them (header, then stream)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise BodyRefused("invalid Content-Length")
            if int(value) > limit:
                raise BodyRefused(f"request body is {value.decode()} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyRefused(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class WebhookApp(Starlette):
    """The Starlette app, with ``POST /authorize`` answered before its middleware and router."""

    def __init__(self, *, authorizer: Authorizer | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.authorizer is not None
            and scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
        ):
            await self._authorize(self.authorizer, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    @staticmethod
    async def _authorize(authorizer: Authorizer, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await read_body(scope, receive, MAX_REVIEW_BYTES)
        except ClientGone:
            return
        except BodyRefused as exc:
            status, payload = authorizer.refuse(exc, started)
        else:
            status, payload = await authorizer.answer(body, started)
        headers = [_JSON, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
