"""What both HTTP client adapters (requests, httpx) share, framework-free.

Building the signer from arguments or the configuration, authenticating the
responses that come back (optionally pinned to the expected signers), and the
redirect policy: a signed request's MAuth headers never go to another origin, and a
same-origin redirect is signed afresh (its method, path and body may differ).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, MutableMapping

from .authenticator import Authenticator, AuthResult
from .body import DEFAULT_SPOOL_THRESHOLD, Body
from .config import Config, require_settings
from .exceptions import ConfigurationError, InauthenticError
from .key_service import origin
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


#: Header name prefixes of MAuth signatures (V1 ``X-MWS-*``, V2 ``MCC-*``).
MAUTH_HEADER_PREFIXES = ("x-mws-", "mcc-")


def is_mauth_header(name: str) -> bool:
    return name.lower().startswith(MAUTH_HEADER_PREFIXES)


def strip_mauth_headers(headers: MutableMapping[str, str]) -> None:
    """Remove every ``X-MWS-*`` and ``MCC-*`` header from ``headers`` in place."""
    for name in [name for name in headers if is_mauth_header(name)]:
        del headers[name]


def same_origin(url: str, other: str) -> bool:
    """Scheme, host and port alike (default ports filled in); http -> https is a change."""
    return origin(url) == origin(other)


def _pinned(app_uuids: Iterable[str] | None) -> frozenset[str] | None:
    if app_uuids is None:
        return None
    if isinstance(app_uuids, str):
        app_uuids = [app_uuids]
    pinned = frozenset(uuid.strip().lower() for uuid in app_uuids)
    if not pinned or "" in pinned:
        raise ConfigurationError("response_app_uuids must name at least one app UUID")
    return pinned


class ResponseChecker:
    """Authenticates responses; the authenticator is built on first use.

    With ``app_uuids``, only responses signed by one of those apps are accepted: a
    response signature says who signed the response, not that it answers this request
    (``mauth-protocol.md`` section 3 binds it to status and body only), so any app the
    MAuth service knows could otherwise pass off its own signed response.
    """

    def __init__(
        self,
        authenticator: Authenticator | None,
        config: Config | None,
        app_uuids: Iterable[str] | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._config = config
        self.app_uuids = _pinned(app_uuids)

    def check(self, status_code: int, body: Body, headers: HeadersLike) -> AuthResult:
        """Raise :class:`~mauth_client.exceptions.InauthenticError` for an unsigned or
        tampered response; return who signed it otherwise."""
        result = self.authenticator.authenticate(
            ResponseSignable(status_code, body), Signed.from_headers(headers)
        )
        return self._pinned(result)

    async def acheck(self, status_code: int, body: Body, headers: HeadersLike) -> AuthResult:
        """:meth:`check` for an event loop (asyncio): the signer's key comes from the
        cache, or is fetched on ``httpx.AsyncClient`` (one fetch per app, shared with
        threads); a body too large to hash on the loop is checked in a worker thread."""
        authenticator = self.authenticator
        signed = Signed.from_headers(headers)
        prechecked = authenticator.precheck(None, "", signed, lookup=False)
        await authenticator.alookup_keys(prechecked)  # a response is verified with keys
        signable = ResponseSignable(status_code, body)
        if isinstance(body, bytes) and len(body) <= DEFAULT_SPOOL_THRESHOLD:
            result = authenticator.authenticate(signable, signed, prechecked)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                None, authenticator.authenticate, signable, signed, prechecked
            )
        return self._pinned(result)

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            self._authenticator = Authenticator.from_config(self._config or Config.from_env())
        return self._authenticator

    def _pinned(self, result: AuthResult) -> AuthResult:
        if self.app_uuids is not None and result.app_uuid.lower() not in self.app_uuids:
            raise InauthenticError(
                f"the response is signed by app {result.app_uuid!r}, which is not one of "
                "the expected signers (response_app_uuids)"
            )
        return result


class SigningClientAuth:
    """The constructor both client auths share (requests' ``MAuth``, httpx's ``MAuthHttpx``).

    Arguments default to ``config`` or the environment (``APP_UUID``,
    ``MAUTH_PRIVATE_KEY``, ``MAUTH_SIGN_VERSIONS``...). With
    ``authenticate_responses=True`` (or an ``authenticator``) every response must be
    MAuth-signed by its server; ``response_app_uuids`` (which implies it) accepts only
    responses signed by those apps.
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
        response_app_uuids: Iterable[str] | None = None,
    ) -> None:
        self.signer, config = build_signer(app_uuid, private_key_data, sign_versions, config)
        wanted = (
            authenticate_responses or authenticator is not None or response_app_uuids is not None
        )
        self._checker = (
            ResponseChecker(authenticator, config, response_app_uuids) if wanted else None
        )

    @property
    def app_uuid(self) -> str:
        return self.signer.app_uuid
