"""``MAuthWSGIMiddleware``: authenticate every request of a WSGI app.

    app = MAuthWSGIMiddleware(app, exempt={"/app_status"})

Rejected requests get a JSON error (401, 403 or 500; no body for HEAD). Authentic
ones reach the app with ``mauth.app_uuid``, ``mauth.authentic`` and
``mauth.protocol_version`` (and ``mauth.permissions``) in the environ, and a
``wsgi.input`` that still holds the whole body. Bodies above ``spool_threshold``
bytes go to a temporary file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from ..body import BodyTooLargeError, limit_size, read_exactly, spool_body
from ..consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PERMISSIONS, ENV_PROTOCOL_VERSION
from ..exceptions import BodyReadError
from ..server import CONTINUE, JSON_CONTENT_TYPE, error_body
from ..wsgi_target import request_target, signed_from_environ
from ._base import MiddlewareBase

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]

_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def declared_length(environ: Environ) -> int | None:
    """The ``Content-Length`` as a number (None when absent); a malformed one raises
    :class:`BodyReadError`."""
    raw_length = environ.get("CONTENT_LENGTH")
    if not raw_length or raw_length.isspace():
        return None
    try:
        size = int(raw_length)
    except ValueError:
        raise BodyReadError("the Content-Length header is not a number") from None
    if size < 0:
        raise BodyReadError("the Content-Length header is negative")
    return size


def read_wsgi_body(
    environ: Environ, threshold: int, limit: int | None = None, size: int | None = -1
) -> bytes | Any:
    """The request body (bytes, or a rewound temporary file past ``threshold``);
    :class:`BodyTooLargeError` past ``limit`` bytes, as soon as that is known.
    ``size``: the declared length when the caller read it already (-1: read it here)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if size == -1:
        size = declared_length(environ)
    if size is not None:
        if limit is not None and size > limit:
            raise BodyTooLargeError(limit)
        if size <= threshold:  # the common case: one read, no spooling machinery
            try:
                data = stream.read(size) if size else b""
            except Exception as exc:
                raise BodyReadError(
                    f"reading the request body failed: {type(exc).__name__}"
                ) from exc
            if len(data) != size:
                raise BodyReadError(
                    f"the request body ended {size - len(data)} bytes before its Content-Length"
                )
            return data if type(data) is bytes else bytes(data)
        length: int | None = size
    elif environ.get("wsgi.input_terminated"):
        length = None  # chunked: the server ends the stream (PEP 3333 extension)
    else:
        return b""
    return spool_body(limit_size(read_exactly(stream.read, length), limit), threshold)


def error_response(
    start_response: Callable[..., Any], status: int, message: str, method: str
) -> list[bytes]:
    """A section 7 JSON error; HEAD gets the headers only."""
    body = error_body(message)
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(body)))],
    )
    return [] if method == "HEAD" else [body]


class MAuthWSGIMiddleware(MiddlewareBase[WSGIApp]):
    """Authenticates every request before it reaches ``app``; options as
    :class:`~mauth_client.middlewares._base.MiddlewareBase` (upstream's
    ``MAuthWSGIMiddleware(app, exempt=...)`` plus keyword-only options)."""

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, query = request_target(environ)
        if (self.exempt or self.should_authenticate is not None) and self.passes_through(
            path, environ.get("PATH_INFO", ""), environ
        ):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        signed = signed_from_environ(environ)
        try:
            # Everything that needs no body first: a request that fails here is
            # answered without reading (or spooling) a byte of its body.
            guard = self.guard
            size = declared_length(environ)
            pre = guard.precheck(method, query, signed, content_length=size)
            if pre.status != CONTINUE:
                return error_response(start_response, pre.status, pre.message, method)
            body = read_wsgi_body(environ, self.spool_threshold, guard.max_body_size, size)
        except BodyTooLargeError as exc:
            refused = self.guard.reject(413, str(exc))
            return error_response(start_response, 413, refused.message, method)
        except BodyReadError as exc:
            refused = self.guard.reject(401, str(exc))
            return error_response(start_response, 401, refused.message, method)
        outcome = guard.check(method, path, query, signed, body, prechecked=pre.prechecked)
        if outcome.status != 200:
            return error_response(start_response, outcome.status, outcome.message, method)
        assert outcome.result is not None
        if isinstance(body, bytes):
            environ["wsgi.input"] = io.BytesIO(body)
            if environ.get("wsgi.input_terminated") or not environ.get("CONTENT_LENGTH"):
                environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body now has a length
        else:
            body.seek(0)
            environ["wsgi.input"] = body
        environ[ENV_APP_UUID] = outcome.result.app_uuid
        environ[ENV_AUTHENTIC] = True
        environ[ENV_PROTOCOL_VERSION] = outcome.result.protocol_version
        environ[ENV_PERMISSIONS] = outcome.permissions
        return self.app(environ, start_response)
