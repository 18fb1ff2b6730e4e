"""MAuth for FastAPI and Starlette routes: a dependency, for apps that protect some routes.

    from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install

    app = FastAPI()
    install(app)  # answer refusals as {"errors": {"mauth": [message]}}
    mauth_required = MAuthRequired(app_uuids={"..."})

    @app.post("/orders")
    async def create(caller: Annotated[MAuthCaller, Depends(mauth_required)]) -> dict:
        return {"caller": caller.app_uuid}

The dependency reads the body through ``await request.body()``, which Starlette
caches on the request, so the handler's own ``request.body()``, ``request.json()``
and ``request.stream()`` see the same bytes and nothing is read twice. Every check
that needs no body (and the caller's key) runs before the body is read, so a
refused request is answered with its body unread; a check whose key is cached runs
on the event loop, a missing key is fetched without a thread
(:mod:`mauth_client.async_guard`). Refusals raise :class:`MAuthRejected` (an
``HTTPException``): with :func:`install` they are answered in the same JSON as
every other adapter, without it FastAPI answers ``{"detail": message}``. To
authenticate every route, sign responses, or protect form-data routes, use
:class:`~mauth_client.middlewares.MAuthASGIMiddleware` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, MutableMapping
from typing import Any, NamedTuple

from ._optional import missing_extra

try:
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
except ImportError as exc:  # the fastapi extra is not installed
    raise missing_extra(__name__, "fastapi", exc) from exc

from . import async_guard
from .authenticator import Authenticator
from .config import Config
from .consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PERMISSIONS, ENV_PROTOCOL_VERSION
from .middlewares.asgi import declared_length
from .permissions import NO_PERMISSIONS, Rule, RuleLike, Rules, compile_rules, required_permissions
from .server import JSON_CONTENT_TYPE, RequestGuard, error_body, is_exempt

logger = logging.getLogger("mauth_client")

__all__ = ["MAuthCaller", "MAuthRejected", "MAuthRequired", "install", "mauth_error_response"]


class MAuthCaller(NamedTuple):
    """Who signed the request: the caller's app UUID, the protocol version it used, and
    the permissions it was granted (empty when no permissions are configured)."""

    app_uuid: str
    protocol_version: int
    permissions: frozenset[str] = NO_PERMISSIONS


class MAuthRejected(HTTPException):
    """A request MAuth refused: 401 (not authentic), 403 (not allowed) or 500 (MAuth
    itself failed). ``detail`` is the message."""


class MAuthRequired:
    """A dependency that authenticates the request and returns the :class:`MAuthCaller`.

    ``app_uuids``: an allow-list (403 for other authentic callers). The authenticator
    is built from ``config`` or the environment unless given, on first use; pass
    ``guard`` to share one :class:`~mauth_client.server.RequestGuard` (and its key
    cache) with other adapters. ``exempt``: paths (or prefixes ending in ``*``) that
    get ``None`` instead of a caller, for a dependency set on a whole router.

    Authorization (issue 13): ``permissions={"studies:write"}`` are required on every
    route the dependency guards (all listed); ``rules=[("POST", "/studies/*",
    "studies:write"), ...]`` name them per method and path, for one instance shared
    by many routes. Both add to the rules of a shared ``guard``. The grants come from
    ``config.permissions`` (or ``MAUTH_PERMISSIONS_FILE``), or the guard's. An
    authentic caller lacking one gets a 403 naming it; the grants are in
    :attr:`MAuthCaller.permissions` and ``scope["mauth.permissions"]``.
    :meth:`requiring` makes a per-route dependency that shares this one's guard
    (and so its key cache).
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator | None = None,
        config: Config | None = None,
        app_uuids: Collection[str] | None = None,
        exempt: Collection[str] = (),
        guard: RequestGuard | None = None,
        permissions: Collection[str] | None = None,
        rules: Iterable[RuleLike | Rule] | Rules | None = None,
    ) -> None:
        self.guard = guard or RequestGuard(authenticator, config=config, app_uuids=app_uuids)
        self.app_uuids = frozenset(app_uuids) if app_uuids is not None else None
        self.exempt = frozenset(exempt)
        # Checked here, so a single string or a bad rule fails where it is written.
        self.required = required_permissions(permissions, "MAuthRequired(permissions=...)")
        self.rules = compile_rules(rules)

    def requiring(self, permissions: Collection[str]) -> MAuthRequired:
        """A dependency like this one (same guard, allow-list, exemptions and rules)
        that also requires ``permissions`` (all listed):
        ``Depends(mauth_required.requiring({"studies:write"}))``."""
        extra = required_permissions(permissions, "MAuthRequired.requiring(...)")
        twin = MAuthRequired(guard=self.guard, app_uuids=self.app_uuids, exempt=self.exempt)
        twin.required = self.required | extra
        twin.rules = self.rules
        return twin

    async def __call__(self, request: Request) -> MAuthCaller | None:
        scope = request.scope
        path = _target(scope)
        if self.exempt and (is_exempt(path, self.exempt) or is_exempt(scope["path"], self.exempt)):
            return None
        method = scope.get("method", "GET")
        query = (scope.get("query_string") or b"").decode("utf-8", "surrogateescape")
        headers = scope.get("headers", [])
        signed = async_guard.parse_headers(headers)
        # Headers, time, token, declared size and the caller's key: before the body.
        pre = await async_guard.precheck(
            self.guard,
            method,
            query,
            signed,
            content_length=declared_length(request.scope.get("headers", [])),
        )
        if not pre.go_on:
            raise MAuthRejected(pre.status, pre.message)
        guard = self.guard
        try:
            body = await request.body()  # cached by Starlette for the handler
        except ClientDisconnect:
            # Nobody is left to answer; the server drops whatever is sent.
            refused = guard.reject(400, "the client disconnected before its body arrived")
            raise MAuthRejected(refused.status, refused.message) from None
        except RuntimeError as exc:  # "Stream consumed": FastAPI parsed a form first
            logger.error("MAuth: the request body was consumed before the dependency: %s", exc)
            refused = guard.reject(
                500,
                "MAuth cannot authenticate this route: its body was parsed as a form before "
                "the MAuth dependency ran; protect it with MAuthASGIMiddleware",
            )
            raise MAuthRejected(refused.status, refused.message) from None
        too_large = guard.too_large(len(body))  # a chunked body has no declared size
        if too_large is not None:
            refused = guard.reject(too_large.status, too_large.message)
            raise MAuthRejected(refused.status, refused.message)
        required = self.required
        if self.rules:
            required = required | self.rules.required(method, path)
        outcome = await async_guard.check(
            guard,
            method,
            path,
            query,
            signed,
            body,
            pre,
            app_uuids=self.app_uuids,
            required=required,
        )
        if not outcome.ok:
            raise MAuthRejected(outcome.status, outcome.message)
        assert outcome.result is not None
        app_uuid, version = outcome.result.app_uuid, outcome.result.protocol_version
        scope[ENV_APP_UUID] = app_uuid  # as the ASGI middleware sets them
        scope[ENV_AUTHENTIC] = True
        scope[ENV_PROTOCOL_VERSION] = version
        scope[ENV_PERMISSIONS] = outcome.permissions
        return MAuthCaller(app_uuid, version, outcome.permissions)


def _target(scope: MutableMapping[str, Any]) -> str:
    """The path as sent (``raw_path``), which is what the caller signed."""
    raw = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
    return raw.decode("utf-8", "surrogateescape") or "/"


async def mauth_error_response(request: Request, exc: Exception) -> Response:
    """The exception handler :func:`install` registers: ``{"errors": {"mauth": [message]}}``."""
    assert isinstance(exc, MAuthRejected)
    body = b"" if request.method == "HEAD" else error_body(str(exc.detail))
    return Response(body, status_code=exc.status_code, media_type=JSON_CONTENT_TYPE)


def install(app: Any) -> None:
    """Answer :class:`MAuthRejected` in the project's JSON error format on ``app`` (a
    FastAPI or Starlette application)."""
    app.add_exception_handler(MAuthRejected, mauth_error_response)


mauth_required = MAuthRequired()
"""A ready dependency configured from the environment (``Depends(mauth_required)``)."""
