"""``MAuthASGIMiddleware``: authenticate every HTTP request of an ASGI app.

    app = MAuthASGIMiddleware(app, exempt={"/app_status"})

Everything that needs no body (headers, time, token, app UUID shape, declared
size, known app) is checked first; a request failing there is answered before a
byte of its body is read. Then the body is read (spooled to a temporary file past
``spool_threshold`` as it arrives, 413 past ``max_body_size``), authenticated, and
replayed to the app; events after it (a client's disconnect from a long-lived or
server-sent-event response) still reach the app. ``lifespan`` and ``websocket``
scopes pass through untouched. The caller's app UUID is in
``scope["mauth.app_uuid"]`` (and ``mauth.authentic``, ``mauth.protocol_version``,
``mauth.permissions``).

With the caller's key cached, the check runs on the event loop (an RSA verify is
tens of microseconds); a missing key is fetched on ``httpx.AsyncClient`` (one fetch
per app, shared with threads), so a slow MAuth service delays only the requests
that need it. A remote-mode ticket or a spooled body's hashing goes to a worker
thread (:mod:`mauth_client.async_guard`, shared with the other async adapters).
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any

from .. import async_guard
from ..body import BodyTooLargeError
from ..consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PERMISSIONS, ENV_PROTOCOL_VERSION
from ..exceptions import BodyReadError
from ..server import JSON_CONTENT_TYPE, error_body
from ..signed import Signed
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


def declared_length(headers: Sequence[tuple[Any, Any]]) -> int | None:
    """The declared ``Content-Length``, or None (absent or unreadable: the server
    frames the body, and the size limit is then enforced while reading)."""
    for key, value in headers:
        if key == b"content-length" and isinstance(value, (bytes, bytearray)):
            text = bytes(value).strip()
            return int(text) if text.isdigit() and len(text) < 19 else None
    return None


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
        headers = scope.get("headers") or ()  # pairs of bytes, read twice, never copied
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)
        signed = Signed.from_headers(headers)
        guard = self.guard
        # Everything that needs no body, and the caller's key, before the body.
        pre = await async_guard.precheck(
            guard, method, query, signed, content_length=declared_length(headers)
        )
        if not pre.go_on:
            await self._error(send, pre.status, pre.message, method)
            return
        try:
            body = await self._read_body(receive, guard.max_body_size)
        except _ClientGone:
            return  # nobody to answer
        except BodyTooLargeError as exc:
            await self._error(send, 413, guard.reject(413, str(exc)).message, method)
            return
        except BodyReadError as exc:
            await self._error(send, 401, self.guard.reject(401, str(exc)).message, method)
            return
        outcome = await async_guard.check(guard, method, path, query, signed, body, pre)
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

    async def _read_body(self, receive: Receive, limit: int | None) -> bytes | IO[bytes]:
        """The body: bytes up to ``spool_threshold``, past it a temporary file written
        as the chunks arrive (never more than the threshold held in memory);
        :class:`BodyTooLargeError` as soon as it grows past ``limit``."""
        message = await receive()
        if message.get("type") == "http.request" and not message.get("more_body", False):
            # The common case: the whole body in one message, taken as it is.
            chunk = message.get("body", b"")
            if type(chunk) is bytes and (limit is None or len(chunk) <= limit):
                return chunk
        buffer = bytearray()
        spooled: IO[bytes] | None = None
        total = 0
        pending: Message | None = message
        try:
            while True:
                message = pending if pending is not None else await receive()
                pending = None
                kind = message.get("type")
                if kind == "http.disconnect":
                    raise _ClientGone
                if kind != "http.request":
                    continue
                chunk = message.get("body", b"")
                if not isinstance(chunk, (bytes, bytearray)):
                    raise BodyReadError("the ASGI server sent a body that is not bytes")
                total += len(chunk)
                if limit is not None and total > limit:
                    raise BodyTooLargeError(limit)
                if spooled is not None:
                    spooled.write(chunk)
                else:
                    buffer += chunk
                    if len(buffer) > self.spool_threshold:
                        spooled = tempfile.TemporaryFile()  # noqa: SIM115 - returned
                        spooled.write(buffer)
                        buffer = bytearray()
                if not message.get("more_body", False):
                    break
        except BaseException:
            if spooled is not None:
                spooled.close()
            raise
        if spooled is None:
            return bytes(buffer)
        spooled.seek(0)
        return spooled

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
