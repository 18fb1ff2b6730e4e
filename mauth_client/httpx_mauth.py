"""MAuth for ``httpx``, sync and async clients alike (one ``auth_flow``).

    httpx.Client(auth=MAuthHttpx(app_uuid, private_key_pem, "v1,v2"))

httpx hands an ``Auth`` the whole request body (``requires_request_body``), so a
streamed body is read into memory here; use ``requests`` + ``MAuth`` to sign very
large uploads in constant memory. Response authentication reads the response body.

Redirects: an ``httpx.Auth`` runs once per ``send``; a client that follows redirects
copies the signed headers onto every hop itself, to any origin. Build the client with
:meth:`MAuthHttpx.client` / :meth:`MAuthHttpx.async_client` (or pass
``event_hooks=auth.event_hooks`` / ``auth.async_event_hooks``): the hook removes the
MAuth headers from a hop to another origin and signs a same-origin hop afresh.
Without it a followed redirect is logged as a WARNING (once per auth).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

from ._optional import missing_extra

try:
    import anyio
    import httpx
except ImportError as exc:  # the httpx extra is not installed
    raise missing_extra(__name__, "httpx", exc) from exc

from .authenticator import AuthResult
from .client import SigningClientAuth, same_origin, strip_mauth_headers
from .signable import RequestSignable

logger = logging.getLogger("mauth_client")
_MARK = "mauth_signed"  # the request extension the redirect hook reads


@dataclass
class _Mark:
    """What the auth flow signed, carried along the redirect chain in ``request.extensions``
    (httpx hands the same dict to every hop)."""

    url: str
    request_id: int
    hooked: bool = False


class MAuthHttpx(SigningClientAuth, httpx.Auth):
    """An ``httpx.Auth`` that signs each request with MAuth; arguments as
    :class:`~mauth_client.client.SigningClientAuth`. A good response's signer is in
    ``response.extensions["mauth_app_uuid"]``."""

    requires_request_body = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requires_response_body = self._checker is not None
        self._warned_unhooked = False

    # --- clients with the redirect hook -----------------------------------------------

    @property
    def event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """``httpx.Client(event_hooks=...)`` value with the redirect hook."""
        return {"request": [self.redirect_hook], "response": []}

    @property
    def async_event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """``httpx.AsyncClient(event_hooks=...)`` value with the redirect hook."""
        return {"request": [self.async_redirect_hook], "response": []}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` using this auth, with the redirect hook added to any
        ``event_hooks`` given."""
        kwargs["event_hooks"] = _merged(kwargs.get("event_hooks"), self.event_hooks)
        return httpx.Client(auth=self, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """As :meth:`client`, for ``httpx.AsyncClient``."""
        kwargs["event_hooks"] = _merged(kwargs.get("event_hooks"), self.async_event_hooks)
        return httpx.AsyncClient(auth=self, **kwargs)

    def redirect_hook(self, request: httpx.Request) -> None:
        """A request event hook: strip or re-sign the MAuth headers of a redirect hop."""
        mark = self._hop(request)
        if mark is not None:
            strip_mauth_headers(request.headers)
            if same_origin(str(request.url), mark.url):
                request.read()
                request.headers.update(self._make_headers(request))

    async def async_redirect_hook(self, request: httpx.Request) -> None:
        """As :meth:`redirect_hook`, for ``httpx.AsyncClient``."""
        mark = self._hop(request)
        if mark is not None:
            strip_mauth_headers(request.headers)
            if same_origin(str(request.url), mark.url):
                await request.aread()
                request.headers.update(self._make_headers(request))

    @staticmethod
    def _hop(request: httpx.Request) -> _Mark | None:
        """The mark of a signed chain when ``request`` is one of its redirect hops."""
        mark = request.extensions.get(_MARK)
        if not isinstance(mark, _Mark):
            return None
        mark.hooked = True
        return None if mark.request_id == id(request) else mark

    def _signed(self, request: httpx.Request) -> None:
        request.headers.update(self._make_headers(request))
        request.extensions[_MARK] = _Mark(str(request.url), id(request))

    def _check_hops(self, request: httpx.Request, response: httpx.Response) -> None:
        mark = request.extensions.get(_MARK)
        unhooked = isinstance(mark, _Mark) and not mark.hooked
        if response.history and unhooked and not self._warned_unhooked:
            self._warned_unhooked = True
            logger.warning(
                "httpx followed a redirect carrying the MAuth headers of the first "
                "request, to whatever origin it named: build the client with "
                "MAuthHttpx.client() or event_hooks=auth.event_hooks"
            )

    def _make_headers(self, request: httpx.Request) -> dict[str, str]:
        # raw_path is the path and query exactly as they go on the wire.
        target = request.url.raw_path.decode("ascii")
        return self.signer.signed_headers(
            RequestSignable(method=request.method, url=target, body=request.content)
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._signed(request)
        response = yield request
        self._check_hops(request, response)
        if self._checker is not None:
            self._record(
                response,
                self._checker.check(response.status_code, response.content, response.headers),
            )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """As :meth:`auth_flow`, but the response check (which may fetch a key from the
        MAuth service) runs in a worker thread, so the event loop is never blocked."""
        await request.aread()
        self._signed(request)
        response = yield request
        self._check_hops(request, response)
        if self._checker is not None:
            await response.aread()
            result = await anyio.to_thread.run_sync(
                self._checker.check, response.status_code, response.content, response.headers
            )
            self._record(response, result)

    @staticmethod
    def _record(response: httpx.Response, result: AuthResult) -> None:
        response.extensions["mauth_app_uuid"] = result.app_uuid
        response.extensions["mauth_protocol_version"] = result.protocol_version


def _merged(
    given: dict[str, list[Callable[..., Any]]] | None,
    ours: dict[str, list[Callable[..., Any]]],
) -> dict[str, list[Callable[..., Any]]]:
    merged = {name: list(hooks) for name, hooks in (given or {}).items()}
    for name, hooks in ours.items():
        merged.setdefault(name, []).extend(hooks)
    return merged
