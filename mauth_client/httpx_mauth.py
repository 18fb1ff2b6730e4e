"""MAuth for ``httpx``, sync and async clients alike (one ``auth_flow``).

    httpx.Client(auth=MAuthHttpx(app_uuid, private_key_pem, "v1,v2"))

httpx hands an ``Auth`` the whole request body (``requires_request_body``), so a
streamed body is read into memory here; use ``requests`` + ``MAuth`` to sign very
large uploads in constant memory. Response authentication reads the response body.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

import httpx

from .authenticator import Authenticator
from .client import client_options
from .config import Config
from .keys import PrivateKeyData
from .signable import RequestSignable


class MAuthHttpx(httpx.Auth):
    """An ``httpx.Auth`` that signs each request with MAuth; see ``requests_mauth.MAuth``."""

    requires_request_body = True

    def __init__(
        self,
        app_uuid: str | None = None,
        private_key_data: PrivateKeyData | None = None,
        sign_versions: str | Iterable[str] | None = None,
        *,
        authenticate_responses: bool = False,
        authenticator: Authenticator | None = None,
        config: Config | None = None,
    ) -> None:
        self.signer, self._checker = client_options(
            app_uuid,
            private_key_data,
            sign_versions,
            authenticate_responses=authenticate_responses,
            authenticator=authenticator,
            config=config,
        )
        self.requires_response_body = self._checker is not None

    @property
    def app_uuid(self) -> str:
        return self.signer.app_uuid

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
            result = self._checker.check(response.status_code, response.content, response.headers)
            response.extensions["mauth_app_uuid"] = result.app_uuid
            response.extensions["mauth_protocol_version"] = result.protocol_version
