"""MAuth for aiohttp: sign a ``ClientSession``'s requests, authenticate ``aiohttp.web``.

    session = aiohttp.ClientSession(middlewares=(MAuthClientMiddleware(app_uuid, key),))
    app = web.Application(middlewares=[MAuthWebMiddleware(exempt={"/app_status"})])

The client middleware (aiohttp 3.12 or later) signs in-memory bodies as they are
and spools a streamed one (an async generator, a file, multipart) while hashing
it, then sends it sized from the spool. The server middleware answers exactly as
the other server adapters do (:class:`~mauth_client.server.RequestGuard`): 401,
403 or 500 with ``{"errors": {"mauth": [message]}}``, and gives the handler the
caller in ``request[APP_UUID]`` (and ``request[AUTHENTIC]``,
``request[PROTOCOL_VERSION]``; typed ``web.RequestKey`` objects named
``mauth.app_uuid`` and so on, or those plain names before aiohttp 3.13). Every
check that needs no body runs before the body is read; a check whose key is cached
runs on the event loop, and a missing key is fetched on ``httpx.AsyncClient``
without a thread, in the client's response check too (:mod:`mauth_client.async_guard`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from contextvars import ContextVar
from typing import IO, Any, TypeVar

from ._optional import missing_extra

try:
    import anyio
    from aiohttp import ClientRequest, ClientResponse, payload, web
    from aiohttp.client_middlewares import ClientHandlerType
    from yarl import URL
except ImportError as exc:  # the aiohttp extra (aiohttp 3.12+, anyio) is not installed
    raise missing_extra(__name__, "aiohttp", exc) from exc

from . import async_guard
from .authenticator import Authenticator
from .body import DEFAULT_SPOOL_THRESHOLD
from .client import SigningClientAuth
from .config import Config
from .consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PERMISSIONS, ENV_PROTOCOL_VERSION
from .exceptions import BodyReadError, ConfigurationError, MAuthError
from .key_service import origin
from .permissions import (
    NO_PERMISSIONS,
    Permissions,
    PermissionsSpec,
    Rule,
    RuleLike,
    Rules,
    compile_rules,
    required_permissions,
)
from .server import JSON_CONTENT_TYPE, RequestGuard, error_body, is_exempt
from .signable import RequestSignable
from .spool import AsyncSpool, as_bytes

logger = logging.getLogger("mauth_client")

__all__ = [
    "APP_UUID",
    "AUTHENTIC",
    "PERMISSIONS",
    "PROTOCOL_VERSION",
    "MAuthClientMiddleware",
    "MAuthWebMiddleware",
    "requires_permissions",
]


def _request_key(name: str, kind: type) -> Any:
    """A typed ``web.RequestKey`` where aiohttp has them (3.13+), else the plain name."""
    factory = getattr(web, "RequestKey", None)
    return factory(name, kind) if factory is not None else name


# Where the server middleware puts the caller: ``request[APP_UUID]``.
APP_UUID = _request_key(ENV_APP_UUID, str)
AUTHENTIC = _request_key(ENV_AUTHENTIC, bool)
PROTOCOL_VERSION = _request_key(ENV_PROTOCOL_VERSION, int)
#: The caller's granted permissions (a frozenset; empty when none are configured).
PERMISSIONS = _request_key(ENV_PERMISSIONS, frozenset)


# -- client ----------------------------------------------------------------------------

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A redirect just answered, for the middleware call of the next hop (which aiohttp
# makes in the same task): the origin of the chain's first request, and the origin the
# redirect points to. A call to another origin is a fresh request, not that hop.
_Origin = tuple[str, str, "int | None"]
_PENDING_HOP: ContextVar[tuple[_Origin, _Origin] | None] = ContextVar(
    "mauth_pending_hop", default=None
)


def _origin(url: URL) -> _Origin:
    return origin(str(url))


class _SpoolWriter:
    """The part of aiohttp's stream-writer interface a payload's ``write`` uses."""

    def __init__(self, spool: AsyncSpool) -> None:
        self.spool = spool

    async def write(self, chunk: Any) -> None:
        await self.spool.aadd(as_bytes(chunk))

    async def drain(self) -> None:
        return None


class MAuthClientMiddleware(SigningClientAuth):
    """An ``aiohttp.ClientSession`` middleware that signs each request with MAuth;
    arguments as :class:`~mauth_client.client.SigningClientAuth`.

    With ``authenticate_responses=True`` an unsigned or tampered response raises
    :class:`~mauth_client.exceptions.InauthenticError` from the call, and a good
    response's signer is in ``response.mauth_app_uuid`` (the checked body stays
    readable). Streamed bodies above ``spool_threshold`` bytes go to a temporary file.
    """

    spool_threshold = DEFAULT_SPOOL_THRESHOLD

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        # aiohttp calls its middlewares again for each redirect hop, with a fresh
        # request: a hop to the origin of the first request is signed for its own
        # method, path and body; a hop to another origin goes unsigned, since a MAuth
        # signature does not name the host and could be replayed against ours.
        here = _origin(request.url)
        pending = _PENDING_HOP.get()
        if pending is not None:
            _PENDING_HOP.set(None)
        chain = pending[0] if pending is not None and pending[1] == here else None
        if chain is not None and here != chain:
            logger.info(
                "MAuth: a redirect to another origin (%s) is sent unsigned", request.url.host
            )
        else:
            await self.sign(request)
        response = await handler(request)
        location = response.headers.get("Location")
        if response.status in _REDIRECTS and location:
            # Every hop is judged against the chain's first origin, as the requests
            # and httpx adapters do: A -> B -> B/x sends nothing signed to B.
            target = _origin(request.url.join(URL(location)))
            _PENDING_HOP.set((chain or here, target))
        if self._checker is not None:
            await self._authenticate(response)
        return response

    async def sign(self, request: ClientRequest) -> None:
        """Add the MAuth headers to ``request``; a streamed body is spooled first."""
        body: Any = request.body
        target = request.url.raw_path_qs  # the path and query as they go on the wire
        if body == b"" or isinstance(body, payload.BytesPayload):
            data = b"" if body == b"" else await body.as_bytes()
            signable = RequestSignable(method=request.method, url=target, body=data)
            request.headers.update(self.signer.signed_headers(signable))
            return
        sized = body.size is not None
        spooled = await _spool_payload(body, self.spool_threshold)
        if not sized:  # a generator went chunked; from the spool it is sent sized
            request.headers.pop("Transfer-Encoding", None)
            request.chunked = None  # aiohttp chunks whenever this is not None
        await request.update_body(spooled)
        signable = RequestSignable(method=request.method, url=target, body=spooled)
        headers = (
            await anyio.to_thread.run_sync(self.signer.signed_headers, signable)
            if not isinstance(spooled, bytes)
            else self.signer.signed_headers(signable)
        )
        request.headers.update(headers)

    async def _authenticate(self, response: ClientResponse) -> None:
        assert self._checker is not None
        body = await response.read()  # cached: the caller can still read it
        try:
            result = await self._checker.acheck(response.status, body, response.headers)
        except BaseException:
            response.release()
            raise
        response.mauth_app_uuid = result.app_uuid  # type: ignore[attr-defined]
        response.mauth_protocol_version = result.protocol_version  # type: ignore[attr-defined]


async def _spool_payload(body: payload.Payload, threshold: int) -> bytes | IO[bytes]:
    """Everything ``body`` would send, in bytes or a rewound temporary file."""
    spool = AsyncSpool(threshold)
    try:
        try:
            await body.write(_SpoolWriter(spool))  # type: ignore[arg-type]
        except (BodyReadError, anyio.get_cancelled_exc_class()):
            raise
        except Exception as exc:
            raise BodyReadError(f"reading the body failed: {type(exc).__name__}") from exc
        spooled = await spool.afinish()
    except BaseException:
        spool.discard()  # nothing is left open when the upload fails or is cancelled
        raise
    if not isinstance(spooled, bytes):
        spooled.seek(0)
    return spooled


# -- server ----------------------------------------------------------------------------


class MAuthWebMiddleware:
    """An ``aiohttp.web`` middleware that authenticates every request.

    Options as the WSGI and ASGI middleware: ``exempt`` paths (or prefixes ending in
    ``*``) and ``should_authenticate(request)`` let requests through
    unauthenticated; ``app_uuids`` is an allow-list (403 for others); the
    authenticator is built from ``config`` or the environment unless given (or pass
    a shared ``guard``). ``sign_response=True`` signs every answer, refusals
    included, in the version the request used (streamed responses go unsigned).
    The body is read with ``await request.read()``, which aiohttp caches for the
    handler and bounds by the application's ``client_max_size``.

    Authorization (issue 13), as the WSGI and ASGI middleware: ``rules=[("POST",
    "/studies/*", "studies:write"), ...]`` and ``permissions=`` (the grants: a
    mapping, a JSON or TOML file, or a callable; default ``config.permissions`` or
    ``MAUTH_PERMISSIONS_FILE``; with a shared ``guard``, the guard's). A handler
    decorated with :func:`requires_permissions` also needs those. An authentic
    caller lacking one gets a 403 naming it; the grants are in
    ``request[PERMISSIONS]``.
    """

    __middleware_version__ = 1  # aiohttp's marker for a new-style middleware

    def __init__(
        self,
        exempt: Collection[str] | None = None,
        *,
        should_authenticate: Callable[[web.Request], bool] | None = None,
        authenticator: Authenticator | None = None,
        config: Config | None = None,
        app_uuids: Collection[str] | None = None,
        sign_response: bool = False,
        guard: RequestGuard | None = None,
        rules: Iterable[RuleLike | Rule] | Rules | None = None,
        permissions: PermissionsSpec | Permissions | None = None,
    ) -> None:
        self.exempt = frozenset(exempt or ())
        self.should_authenticate = should_authenticate
        if guard is not None and permissions is not None:
            raise ConfigurationError(
                "MAuthWebMiddleware: give permissions= to the shared guard, not beside it"
            )
        self.guard = guard or RequestGuard(
            authenticator, config=config, app_uuids=app_uuids, permissions=permissions
        )
        # Checked (and compiled) here, so a bad rule fails where it is given; added to
        # the rules of a shared guard.
        self.rules = compile_rules(rules)
        self.app_uuids = frozenset(app_uuids) if app_uuids is not None else None
        self.sign_response = sign_response
        if sign_response:
            self.guard.signer  # noqa: B018 - fail at start-up, not on the first response

    async def __call__(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        path = request.raw_path.partition("?")[0] or "/"  # as sent: what was signed
        if self._passes_through(path, request):
            response: web.StreamResponse = await handler(request)
            return response
        response = await self._authenticate_and_handle(request, path, handler)
        if self.sign_response:
            self._sign(response, request.get(PROTOCOL_VERSION))
        return response

    def _passes_through(self, path: str, request: web.Request) -> bool:
        if self.exempt and (is_exempt(path, self.exempt) or is_exempt(request.path, self.exempt)):
            return True
        return self.should_authenticate is not None and not self.should_authenticate(request)

    async def _authenticate_and_handle(
        self, request: web.Request, path: str, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        query = request.raw_path.partition("?")[2]
        signed = async_guard.parse_headers(request.raw_headers)
        # Headers, time, token, declared size and the caller's key: before the body.
        pre = await async_guard.precheck(
            self.guard, request.method, query, signed, content_length=request.content_length
        )
        head = request.method == "HEAD"
        if not pre.go_on:
            return _error(pre.status, pre.message, head=head)
        guard = self.guard
        try:
            body = await request.read()  # cached by aiohttp for the handler
        except web.HTTPRequestEntityTooLarge as exc:
            refused = guard.reject(
                413, f"the request body is larger than this server accepts: {exc.text}"
            )
            return _error(refused.status, refused.message, head=head)
        except Exception as exc:  # the client went away, or sent a broken body
            refused = guard.reject(401, f"reading the request body failed: {type(exc).__name__}")
            return _error(refused.status, refused.message, head=head)
        too_large = guard.too_large(len(body))  # a chunked body has no declared size
        if too_large is not None:
            refused = guard.reject(too_large.status, too_large.message)
            return _error(refused.status, refused.message, head=head)
        required = _handler_permissions(request)
        if self.rules:
            required = required | self.rules.required(request.method, path)
        outcome = await async_guard.check(
            guard,
            request.method,
            path,
            query,
            signed,
            body,
            pre,
            app_uuids=self.app_uuids,  # also when the guard is shared (guard=)
            required=required,
        )
        if outcome.result is not None:
            request[PROTOCOL_VERSION] = outcome.result.protocol_version
        if not outcome.ok:
            return _error(outcome.status, outcome.message, head=head)
        assert outcome.result is not None
        request[APP_UUID] = outcome.result.app_uuid
        request[AUTHENTIC] = True
        request[PERMISSIONS] = outcome.permissions
        response: web.StreamResponse = await handler(request)
        return response

    def _sign(self, response: web.StreamResponse, version: int | None) -> None:
        if not isinstance(response, web.Response) or response.prepared:
            logger.warning("MAuth: a streamed response cannot be signed; it was sent unsigned")
            return
        body = response.body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            logger.warning("MAuth: a payload response cannot be signed; it was sent unsigned")
            return
        try:
            headers = self.guard.response_headers(response.status, bytes(body or b""), version)
        except MAuthError as exc:
            logger.error("MAuth: the response could not be signed and was sent unsigned: %s", exc)
            return
        response.headers.update(headers)


_PERMISSIONS_ATTRIBUTE = "__mauth_permissions__"
H = TypeVar("H")


def requires_permissions(permissions: Collection[str]) -> Callable[[H], H]:
    """Mark an ``aiohttp.web`` handler (a function or a ``web.View`` class) as needing
    ``permissions`` (all listed), enforced by :class:`MAuthWebMiddleware` on the
    route that resolves to it, on top of the middleware's ``rules``::

        @routes.post("/studies/{id}")
        @requires_permissions({"studies:write"})
        async def update(request: web.Request) -> web.Response: ...

    Put it below the route decorator (it must mark the handler the route holds).
    """
    required = required_permissions(permissions, "requires_permissions(...)")

    def mark(handler: H) -> H:
        earlier: frozenset[str] = getattr(handler, _PERMISSIONS_ATTRIBUTE, NO_PERMISSIONS)
        setattr(handler, _PERMISSIONS_ATTRIBUTE, earlier | required)
        return handler

    return mark


def _handler_permissions(request: web.Request) -> frozenset[str]:
    """What the matched route's handler was marked with by :func:`requires_permissions`."""
    match_info = request.match_info
    handler = getattr(match_info, "handler", None) if match_info is not None else None
    marked = getattr(handler, _PERMISSIONS_ATTRIBUTE, NO_PERMISSIONS)
    return marked if isinstance(marked, frozenset) else NO_PERMISSIONS


def _error(status: int, message: str, *, head: bool = False) -> web.Response:
    return web.Response(
        status=status,
        body=b"" if head else error_body(message),
        content_type=JSON_CONTENT_TYPE,
    )
