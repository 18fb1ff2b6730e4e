"""``MAuthASGIMiddleware``: authenticate every HTTP request of an ASGI app.

    app = MAuthASGIMiddleware(app, exempt={"/app_status"})

The body is read, authenticated, and replayed to the app; events after it (a
client's disconnect from a long-lived or server-sent-event response) still reach
the app. ``lifespan`` and ``websocket`` scopes pass through untouched. The caller's
app UUID is in ``scope["mauth.app_uuid"]`` (and ``mauth.authentic``,
``mauth.protocol_version``, ``mauth.permissions``). The MAuth check runs in a worker
thread, so a slow MAuth service never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import IO, Any

from ..body import spool_body
from ..consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PERMISSIONS, ENV_PROTOCOL_VERSION
from ..exceptions import BodyReadError
from ..server import JSON_CONTENT_TYPE, error_body
from ._base import MiddlewareBase

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REPLAY_CHUNK = 65536


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class MAuthASGIMiddleware(MiddlewareBase[ASGIApp]):
    """Authenticates every HTTP request before it reaches ``app``; options as
    :class:`~mauth_client.middlewares._base.MiddlewareBase` (``should_authenticate``
    receives the ASGI scope)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        path = _text(raw_path) or "/"
        query = _text(scope.get("query_string") or b"")
        if self.passes_through(path, scope.get("path", ""), scope):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        try:
            body = await self._read_body(receive)
        except _ClientGone:
            return  # nobody to answer
        except BodyReadError as exc:
            await self._error(send, 401, self.guard.reject(401, str(exc)).message, method)
            return
        headers = [(k, v) for k, v in scope.get("headers", [])]
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # so a tracing span here has the request's parent
        outcome = await loop.run_in_executor(
            None, context.run, lambda: self.guard.check(method, path, query, headers, body)
        )
        if not outcome.ok:
            await self._error(send, outcome.status, outcome.message, method)
            return
        assert outcome.result is not None
        scope = dict(scope)
        scope[ENV_APP_UUID] = outcome.result.app_uuid
        scope[ENV_AUTHENTIC] = True
        scope[ENV_PROTOCOL_VERSION] = outcome.result.protocol_version
        scope[ENV_PERMISSIONS] = outcome.permissions
        await self.app(scope, self._replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | IO[bytes]:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "http.disconnect":
                raise _ClientGone
            if kind != "http.request":
                continue
            chunk = message.get("body", b"")
            if not isinstance(chunk, (bytes, bytearray)):
                raise BodyReadError("the ASGI server sent a body that is not bytes")
            chunks.append(bytes(chunk))
            if not message.get("more_body", False):
                break
        return spool_body(chunks, self.spool_threshold)

    @staticmethod
    def _replay(body: bytes | IO[bytes], receive: Receive) -> Receive:
        """A ``receive`` that yields the body already read (a spooled one chunk by chunk,
        straight from its file), then the real events."""
        done = False
        if not isinstance(body, bytes):
            body.seek(0)

        async def replay() -> Message:
            nonlocal done
            if done:
                return await receive()  # disconnects and anything after the body
            if isinstance(body, bytes):
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            chunk = body.read(REPLAY_CHUNK)
            if chunk:
                return {"type": "http.request", "body": chunk, "more_body": True}
            done = True
            body.close()
            return {"type": "http.request", "body": b"", "more_body": False}

        return replay

    @staticmethod
    async def _error(send: Send, status: int, message: str, method: str) -> None:
        body = error_body(message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", JSON_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
