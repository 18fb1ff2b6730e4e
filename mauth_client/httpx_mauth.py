"""MAuth for ``httpx``, sync and async clients alike (one ``auth_flow``).

    httpx.Client(auth=MAuthHttpx(app_uuid, private_key_pem, "v1,v2"))

httpx hands an ``Auth`` the whole request body (``requires_request_body``), so a
streamed body is read into memory here; use ``requests`` + ``MAuth`` to sign very
large uploads in constant memory. Response authentication reads the response body.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from ._optional import missing_extra

try:
    import anyio
    import httpx
except ImportError as exc:  # the httpx extra is not installed
    raise missing_extra(__name__, "httpx", exc) from exc

from .authenticator import AuthResult
from .client import SigningClientAuth
from .signable import RequestSignable


class MAuthHttpx(SigningClientAuth, httpx.Auth):
    """An ``httpx.Auth`` that signs each request with MAuth; arguments as
    :class:`~mauth_client.client.SigningClientAuth`. A good response's signer is in
    ``response.extensions["mauth_app_uuid"]``."""

    requires_request_body = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requires_response_body = self._checker is not None

    def _make_headers(self, request: httpx.Request) -> dict[str, str]:
        # raw_path is the path and query exactly as they go on the wire.
        target = request.url.raw_path.decode("ascii")
        return self.signer.signed_headers(
            RequestSignable(method=request.method, url=target, body=request.content)
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._make_headers(request))
        response = yield request
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
        request.headers.update(self._make_headers(request))
        response = yield request
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
