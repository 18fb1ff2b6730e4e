"""MAuth for ``requests``: sign outgoing requests, optionally authenticate the responses.

    session.auth = MAuth(app_uuid, private_key_pem, "v1,v2")

File bodies are hashed and rewound; generator bodies are spooled to a temporary
file while being hashed (bounded memory) and sent from it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import requests

from .body import in_memory, is_rereadable, iter_chunks
from .config import Config
from .exceptions import ConfigurationError
from .keys import PrivateKeyData
from .signable import RequestSignable, ResponseSignable
from .signed import Signed
from .signer import Signer

if TYPE_CHECKING:
    from .authenticator import Authenticator

SPOOL_IN_MEMORY = 1024 * 1024


def spool(body: Any) -> Any:
    """A body that can be read twice: in-memory and seekable bodies as they are,
    anything else copied into a temporary file (in memory up to 1 MiB)."""
    if is_rereadable(body):
        return body
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    for chunk in iter_chunks(body):
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


class MAuth(requests.auth.AuthBase):
    """A ``requests`` auth that signs each request with MAuth.

    Arguments default to the environment (``APP_UUID``, ``MAUTH_PRIVATE_KEY``,
    ``MAUTH_SIGN_VERSIONS``...). With ``authenticate_responses=True`` every
    response must be MAuth-signed by its server: an unsigned or tampered response
    raises :class:`~mauth_client.exceptions.InauthenticError` from the call, and a
    good one carries the server's app UUID in ``response.mauth_app_uuid``.
    """

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
        if app_uuid is None or private_key_data is None or sign_versions is None:
            config = config or Config.from_env()
        if config is not None:
            app_uuid = app_uuid or config.app_uuid
            private_key_data = private_key_data or config.private_key
            sign_versions = sign_versions or config.sign_versions
        if not app_uuid or not private_key_data:
            raise ConfigurationError(
                "MAuth is not configured: set "
                + " and ".join(
                    name
                    for name, value in (
                        ("APP_UUID (or MAUTH_APP_UUID)", app_uuid),
                        (
                            "MAUTH_PRIVATE_KEY (or PRIVATE_KEY, or MAUTH_PRIVATE_KEY_FILE)",
                            private_key_data,
                        ),
                    )
                    if not value
                )
            )
        self.signer = Signer(app_uuid, private_key_data, sign_versions)
        self._config = config
        self._authenticator = authenticator
        self.authenticate_responses = authenticate_responses or authenticator is not None

    @property
    def app_uuid(self) -> str:
        return self.signer.app_uuid

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body
        if in_memory(body) is None:
            body = request.body = spool(body)
        headers = self.signer.signed_headers(
            RequestSignable(method=request.method or "GET", url=request.url or "/", body=body)
        )
        request.headers.update(headers)
        if self.authenticate_responses:
            request.register_hook("response", self._authenticate_response)  # type: ignore[no-untyped-call]
        return request

    def make_headers(self, request: requests.PreparedRequest) -> dict[str, str]:
        """The MAuth headers for a prepared request (upstream API)."""
        return self.signer.signed_headers(
            RequestSignable(
                method=request.method or "GET", url=request.url or "/", body=request.body
            )
        )

    def _authenticate_response(self, response: requests.Response, **_: Any) -> requests.Response:
        from .authenticator import Authenticator

        if self._authenticator is None:
            self._authenticator = Authenticator.from_config(
                self._config or Config.from_env(), signer=self.signer
            )
        result = self._authenticator.authenticate(
            ResponseSignable(response.status_code, response.content),
            Signed.from_headers(response.headers),
        )
        response.mauth_app_uuid = result.app_uuid  # type: ignore[attr-defined]
        response.mauth_protocol_version = result.protocol_version  # type: ignore[attr-defined]
        return response
