"""What both HTTP client adapters (requests, httpx) share, framework-free.

Building the signer from arguments or the configuration, and authenticating the
responses that come back.
"""

from __future__ import annotations

from collections.abc import Iterable

from .authenticator import Authenticator, AuthResult
from .body import Body
from .config import Config, require_settings
from .keys import PrivateKeyData
from .signable import ResponseSignable
from .signed import HeadersLike, Signed
from .signer import Signer


def build_signer(
    app_uuid: str | None,
    private_key_data: PrivateKeyData | None,
    sign_versions: str | Iterable[str] | None,
    config: Config | None,
) -> tuple[Signer, Config | None]:
    """A signer from explicit arguments, falling back to ``config`` or the environment.

    Raises :class:`ConfigurationError` naming what to set when something is missing.
    """
    if app_uuid is None or private_key_data is None or sign_versions is None:
        config = config or Config.from_env()
    if config is not None:
        app_uuid = app_uuid or config.app_uuid
        private_key_data = private_key_data or config.private_key
        sign_versions = sign_versions or config.sign_versions
    require_settings({"app_uuid": app_uuid, "private_key": private_key_data})
    assert app_uuid is not None  # narrowing for mypy: require_settings just raised if not
    assert private_key_data is not None
    return Signer(app_uuid, private_key_data, sign_versions), config


class ResponseChecker:
    """Authenticates responses; the authenticator is built on first use."""

    def __init__(self, authenticator: Authenticator | None, config: Config | None) -> None:
        self._authenticator = authenticator
        self._config = config

    def check(self, status_code: int, body: Body, headers: HeadersLike) -> AuthResult:
        """Raise :class:`~mauth_client.exceptions.InauthenticError` for an unsigned or
        tampered response; return who signed it otherwise."""
        if self._authenticator is None:
            self._authenticator = Authenticator.from_config(self._config or Config.from_env())
        return self._authenticator.authenticate(
            ResponseSignable(status_code, body), Signed.from_headers(headers)
        )


class SigningClientAuth:
    """The constructor both client auths share (requests' ``MAuth``, httpx's ``MAuthHttpx``).

    Arguments default to ``config`` or the environment (``APP_UUID``,
    ``MAUTH_PRIVATE_KEY``, ``MAUTH_SIGN_VERSIONS``...). With
    ``authenticate_responses=True`` (or an ``authenticator``) every response must be
    MAuth-signed by its server.
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
        self.signer, config = build_signer(app_uuid, private_key_data, sign_versions, config)
        wanted = authenticate_responses or authenticator is not None
        self._checker = ResponseChecker(authenticator, config) if wanted else None

    @property
    def app_uuid(self) -> str:
        return self.signer.app_uuid
