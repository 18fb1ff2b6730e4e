"""Authenticating received messages (``mauth-protocol.md`` section 4).

:class:`Authenticator` is the policy: which version to check, V2-to-V1 fallback,
V2-only, the time window, the token, and then the signature, checked here with a
public key (local mode) or by the MAuth service (remote mode). Its collaborators
(key source, ticket checker, clock, logger) are injected.

``LocalAuthenticator`` and ``RemoteAuthenticator`` keep upstream's
``(signable, signed, logger).is_authentic()`` API on top of it.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from .config import Config, environment_fingerprint
from .consts import ALLOWED_DRIFT_SECONDS, MWS_TOKEN, MWSV2_TOKEN
from .exceptions import (
    ConfigurationError,
    InauthenticError,
    MAuthNotPresent,
    MissingV2Error,
    ReplayCacheUnavailable,
    ReplayedRequestError,
    UnableToAuthenticateError,
    UnableToSignError,
)
from .key_service import (
    KeyAnswer,
    ServiceAnswer,
    ServiceRequest,
    authentication_ticket,
    ticket_verdict,
)
from .key_source import KeySource, LocalKeySource, MAuthServiceClient
from .keys import load_public_key
from .replay import ReplayCache, ReplayProtection, cache_from_setting
from .signable import RequestSignable, Signable
from .signed import SignatureInfo, Signed
from .signer import Signer
from .verifier import decode_signature, verify_v1, verify_v2

Clock = Callable[[], float]
_LOGGER = logging.getLogger("mauth_client")
_MAX_TIME_DIGITS = 12  # up to year 33658; longer is "too large to be a time"


class AuthResult(NamedTuple):
    """What an authentic message told us."""

    app_uuid: str
    protocol_version: int


_new_result = tuple.__new__  # skips the NamedTuple's Python-level __new__ on the hot path


class TicketChecker(Protocol):
    """Remote mode: asks the MAuth service whether a signature is authentic."""

    def check(self, signable: RequestSignable, info: SignatureInfo) -> None: ...


class RemoteTicketChecker:
    """Checks signatures through the service's ``authentication_tickets`` endpoint (section 5)."""

    def __init__(self, client: MAuthServiceClient) -> None:
        self.client = client

    def check(self, signable: RequestSignable, info: SignatureInfo) -> None:
        # The ticket and the verdict are the service protocol's (key_service).
        response = self.client.request(
            "POST",
            "/authentication_tickets.json",
            json={"authentication_ticket": authentication_ticket(signable, info)},
        )
        ticket_verdict(response.status_code, info)


class _LazyServiceClient(MAuthServiceClient):
    """The MAuth service client, connected on the first call to the service.

    Until a key is actually fetched nothing needs the private key: a request without
    a signature is still a 401, a key supplied through a patched ``KeyHolder`` needs
    no service, and a KMS-encrypted key is decrypted once, when first needed. A bad
    key surfaces on that first call (a 500 naming it), never as an import or
    construction traceback.
    """

    def __init__(self, config: Config) -> None:  # the real client is built on first use
        config.require("mauth_url", "app_uuid", "private_key")  # presence, checked now
        self.config = config
        self._real: MAuthServiceClient | None = None
        self._connect_lock = threading.Lock()

    def _connected(self) -> MAuthServiceClient:
        real = self._real
        if real is None:
            with self._connect_lock:
                if self._real is None:
                    self._real = MAuthServiceClient(self.config.resolved())
                real = self._real
        return real

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._connected().request(method, path, **kwargs)

    def call(self, request: ServiceRequest) -> ServiceAnswer:
        return self._connected().call(request)

    def security_token(self, app_uuid: str) -> KeyAnswer:
        return self._connected().security_token(app_uuid)

    def close(self) -> None:
        if self._real is not None:
            self._real.close()


class Authenticator:
    """Decides whether a message is authentic.

    ``authenticate`` returns an :class:`AuthResult` or raises
    :class:`InauthenticError` (and its subclasses :class:`MAuthNotPresent`,
    :class:`MissingV2Error`) or :class:`UnableToAuthenticateError`.
    ``is_authentic`` gives upstream's ``(authentic, status_code, message)`` instead.
    """

    def __init__(
        self,
        key_source: KeySource | None = None,
        *,
        ticket_checker: TicketChecker | None = None,
        v2_only: bool = False,
        disable_fallback_to_v1: bool = False,
        time_window: int = ALLOWED_DRIFT_SECONDS,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        replay_cache: ReplayCache | ReplayProtection | None = None,
        replay_methods: str | Collection[str] | None = None,
        replay_fail_open: bool = False,
    ) -> None:
        if key_source is None and ticket_checker is None:
            raise ValueError("an Authenticator needs a key_source or a ticket_checker")
        self.key_source = key_source
        self.ticket_checker = ticket_checker
        self.v2_only = v2_only
        self.disable_fallback_to_v1 = disable_fallback_to_v1
        self.time_window = time_window
        # None: read time.time when each message is checked (not bound at import or
        # construction), so freezegun and the like control it, as they did upstream.
        self.clock = clock
        self.logger = logger or logging.getLogger("mauth_client")
        # Replay protection (issue 12): applied once, after a request was verified.
        self.replay: ReplayProtection | None = None
        if isinstance(replay_cache, ReplayProtection):
            self.replay = replay_cache
        elif replay_cache is not None:
            self.replay = ReplayProtection(
                replay_cache,
                methods=replay_methods,
                fail_open=replay_fail_open,
                time_window=time_window,
            )

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        signer: Signer | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> Authenticator:
        """Local or remote per ``config.mauth_mode``; in local mode keys go through
        :class:`~mauth_client.key_holder.KeyHolder`, so patching it supplies keys."""
        from .key_holder import KeyHolderSource

        client = _LazyServiceClient(config) if config.mauth_url else None
        source = None
        if client is not None:
            source = KeyHolderSource(
                LocalKeySource(config, client=client, clock=clock or _time.time)
            )
        else:
            source = KeyHolderSource(None)
        remote = config.mauth_mode == "remote"
        if remote and client is None:
            config.require("mauth_url")
        return cls(
            source,
            ticket_checker=RemoteTicketChecker(client) if remote and client else None,
            v2_only=config.v2_only_authenticate,
            disable_fallback_to_v1=config.disable_fallback_to_v1_on_v2_failure,
            time_window=config.time_window,
            clock=clock,
            logger=logger,
            replay_cache=cache_from_setting(config.replay_cache, clock=clock),
            replay_methods=config.replay_methods,
            replay_fail_open=config.replay_fail_open,
        )

    # --- outcomes ---------------------------------------------------------------------

    def authenticate(self, signable: Signable, signed: Signed) -> AuthResult:
        """Authenticate ``signable`` by its headers ``signed`` (section 4), then, with
        replay protection on, record its signatures (:class:`ReplayedRequestError`
        for one seen before, :class:`ReplayCacheUnavailable` when the cache fails)."""
        result = self._authenticate_signatures(signable, signed)
        if self.replay is not None:
            try:
                self.replay.check(signable, signed)
            except ReplayedRequestError as exc:
                self.logger.warning("MAuth: app %r: %s", result.app_uuid, exc)
                raise
            except ReplayCacheUnavailable as exc:
                self.logger.error("MAuth: could not check for a replay: %s", exc)
                raise
        return result

    def _authenticate_signatures(self, signable: Signable, signed: Signed) -> AuthResult:
        v2 = signed.v2
        if v2 is None:
            v1 = signed.v1
            if v1 is None:
                self.logger.warning("MAuth authentication failed: no signature present")
                raise MAuthNotPresent(
                    "Authentication Failed. No mAuth signature present; X-MWS-Authentication "
                    "or MCC-Authentication header is blank."
                )
            if self.v2_only:
                self.logger.warning("MAuth authentication failed: V2 required, V1 sent")
                raise MissingV2Error(
                    "This service requires mAuth v2 mcc-authentication header but only v1 "
                    "x-mws-authentication is present"
                )
            return self._authenticate_one(signable, v1)
        try:
            return self._authenticate_one(signable, v2)
        except InauthenticError as exc:
            # V1 is read only now: most messages never need it (section 4.5).
            v1 = signed.v1
            if v1 is None or self.v2_only or self.disable_fallback_to_v1:
                raise
            self.logger.warning("MAuth V2 failed (%s); falling back to V1", exc)
            try:
                return self._authenticate_one(signable, v1)
            except InauthenticError as fallback:  # say why both failed, V1 first
                raise type(fallback)(f"{fallback} (after V2 failed: {exc})") from None

    def is_authentic(self, signable: Signable, signed: Signed) -> tuple[bool, int, str]:
        """``(True, 200, "")``, ``(False, 401, reason)`` or ``(False, 500, reason)``
        (503 when the replay cache failed)."""
        try:
            self.authenticate(signable, signed)
        except InauthenticError as exc:
            return False, 401, str(exc)
        except ReplayCacheUnavailable as exc:
            return False, 503, str(exc)
        except UnableToAuthenticateError as exc:
            return False, 500, str(exc)
        return True, 200, ""

    # --- one version ------------------------------------------------------------------

    def _authenticate_one(self, signable: Signable, info: SignatureInfo) -> AuthResult:
        label = "V2" if info.version == 2 else "V1"
        self.logger.info(
            "MAuth: authenticating a message from app %r with %s", info.app_uuid, label
        )
        try:
            self._check_time_and_token(info)
            assert info.app_uuid is not None
            if self.ticket_checker is not None and isinstance(signable, RequestSignable):
                self.ticket_checker.check(signable, info)
            elif not self._signature_valid(signable, info):
                # Only now, on failure, say whether it was even a signature.
                why = (
                    "is not standard base64"
                    if decode_signature(info.signature) is None
                    else ("does not match the message")
                )
                raise InauthenticError(
                    f"Signature verification failed for {label}: the {label} signature of "
                    f"app {info.app_uuid!r} {why}"
                )
        except UnableToAuthenticateError as exc:
            self.logger.error("MAuth: could not authenticate app %r: %s", info.app_uuid, exc)
            raise
        except InauthenticError as exc:
            self.logger.warning("MAuth: app %r %s inauthentic: %s", info.app_uuid, label, exc)
            raise
        except UnableToSignError as exc:  # a malformed message description: not authentic
            self.logger.warning("MAuth: app %r %s unreadable: %s", info.app_uuid, label, exc)
            raise InauthenticError(f"the message could not be read: {exc}") from None
        except ConfigurationError as exc:  # our side is misconfigured: not the caller's fault
            self.logger.error("MAuth: cannot authenticate: %s", exc)
            raise UnableToAuthenticateError(f"MAuth is misconfigured: {exc}") from None
        return _new_result(AuthResult, (info.app_uuid, info.version))

    def _check_time_and_token(self, info: SignatureInfo) -> None:
        """Section 4 steps 2 and 3: a time within the window, the version's token."""
        text = info.time
        if text.isdigit() and text.isascii() and len(text) <= _MAX_TIME_DIGITS:
            clock = self.clock
            drift = int(text) - (_time.time() if clock is None else clock())
            if -self.time_window <= drift <= self.time_window:
                if info.usable and info.token == (MWSV2_TOKEN if info.version == 2 else MWS_TOKEN):
                    return
                self._check_token(info)
                return
        name = "MCC-Time" if info.version == 2 else "X-MWS-Time"
        if not text:
            raise InauthenticError(f"Time verification failed. No {name} header present.")
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIME_DIGITS):
            raise InauthenticError(
                f"Time verification failed. {name} is not a whole number of epoch seconds."
            )
        when = "in the future" if drift > 0 else "old"
        raise InauthenticError(
            f"Time verification failed. {name} is {abs(int(drift))} seconds {when}; at most "
            f"{self.time_window} seconds are allowed."
        )

    @staticmethod
    def _check_token(info: SignatureInfo) -> None:
        expected = MWSV2_TOKEN if info.version == 2 else MWS_TOKEN
        if info.token != expected:
            raise InauthenticError(
                f"Token verification failed. Expected {expected}; "
                f"token was {info.token or 'missing'}."
            )
        if not info.usable:
            header = "MCC-Authentication" if info.version == 2 else "X-MWS-Authentication"
            raise InauthenticError(f"The {header} header is malformed.")

    def _signature_valid(self, signable: Signable, info: SignatureInfo) -> bool:
        if self.key_source is None or info.app_uuid is None:
            raise UnableToAuthenticateError("this authenticator has no source of public keys")
        found = self.key_source.get_public_key(info.app_uuid)
        # Key sources may answer with PEM; a key object needs no (ABC-checked) reload.
        key = load_public_key(found) if isinstance(found, (str, bytes)) else found
        if self._matches_any(key, signable, info):
            return True
        # The app may have rotated its key: the source may fetch it again (issue 12).
        refresh = getattr(self.key_source, "refresh_public_key", None)
        fresh = refresh(info.app_uuid, found) if refresh is not None else None
        if fresh is None or fresh is found:
            return False
        key = load_public_key(fresh) if isinstance(fresh, (str, bytes)) else fresh
        return self._matches_any(key, signable, info)

    def _matches_any(self, key: rsa.RSAPublicKey, signable: Signable, info: SignatureInfo) -> bool:
        if self._matches(key, signable, info):  # the message as received
            return True
        # Section 4.6: also accept the target as a server may have re-encoded it. The
        # variants are only built after the message as received failed to match.
        return any(self._matches(key, variant, info) for variant in signable.variants())

    @staticmethod
    def _matches(key: rsa.RSAPublicKey, signable: Signable, info: SignatureInfo) -> bool:
        assert info.app_uuid is not None
        if info.version == 2:
            return verify_v2(key, info.signature, signable.v2_string(info.app_uuid, info.time))
        digest = signable.v1_hexdigest(info.app_uuid, info.time)
        return digest is not None and verify_v1(key, info.signature, digest)


# --- upstream compatibility -------------------------------------------------------------
#
# Upstream built its authenticator per request from class attributes. Here one default
# authenticator per mode is built from the environment (and Config's class attributes)
# under a lock, and rebuilt only when environment_fingerprint() changes; the per-call
# cost is one fingerprint and two dict lookups.

_defaults: dict[str, tuple[tuple[object, ...], Authenticator]] = {}
# (mode, logger, time window) -> (fingerprint, authenticator sharing the default's key cache)
_derived: dict[tuple[object, ...], tuple[tuple[object, ...], Authenticator]] = {}
_MAX_DERIVED = 256
_defaults_lock = threading.Lock()


def default_authenticator(mode: str | None = None) -> Authenticator:
    """A process-wide authenticator built from the environment on first use, one per
    ``mode`` ("local", "remote", or None for ``MAUTH_MODE``); rebuilt when the MAuth
    environment variables or ``Config``'s class attributes change."""
    fingerprint = environment_fingerprint()
    key = mode or "environment"
    state = _defaults.get(key)
    if state is not None and state[0] == fingerprint:
        return state[1]
    with _defaults_lock:
        state = _defaults.get(key)
        if state is None or state[0] != fingerprint:
            # A KMS-encrypted key is decrypted on the first key fetch (_LazyServiceClient).
            config = Config.from_env(resolve_private_key=False)
            if mode:
                config = config.with_overrides(mauth_mode=mode)
            state = _defaults[key] = (fingerprint, Authenticator.from_config(config))
    return state[1]


def reset_default_authenticator() -> None:
    """Forget the process-wide authenticators (and their key caches): the next call
    reads the environment again."""
    with _defaults_lock:
        _defaults.clear()
        _derived.clear()


def _compat_authenticator(mode: str, logger: logging.Logger, time_window: int) -> Authenticator:
    """The default authenticator of ``mode`` with the caller's logger and time window."""
    fingerprint = environment_fingerprint()
    key = (mode, logger, time_window)
    state = _derived.get(key)
    if state is not None and state[0] == fingerprint:
        return state[1]
    base = default_authenticator(mode)
    derived = Authenticator(
        base.key_source,
        ticket_checker=base.ticket_checker,
        v2_only=base.v2_only,
        disable_fallback_to_v1=base.disable_fallback_to_v1,
        time_window=time_window,
        clock=base.clock,
        logger=logger,
        replay_cache=base.replay,
    )
    with _defaults_lock:
        if len(_derived) >= _MAX_DERIVED:  # many distinct loggers: keep it bounded
            _derived.clear()
        _derived[key] = (fingerprint, derived)
    return derived


class AbstractAuthenticator:
    """Upstream's ``(signable, signed, logger)`` authenticator API, over the default
    :class:`Authenticator` of its mode (built once, reused by every instance)."""

    ALLOWED_DRIFT_SECONDS = ALLOWED_DRIFT_SECONDS
    AUTHENTICATION_TYPE: str | None = None

    def __init__(self, signable: Signable, signed: Signed, logger: logging.Logger | None) -> None:
        self.signable = signable
        self.signed = signed
        self.logger = logger or _LOGGER

    def _authenticator(self) -> Authenticator:
        mode = "remote" if self.AUTHENTICATION_TYPE == "REMOTE" else "local"
        return _compat_authenticator(mode, self.logger, self.ALLOWED_DRIFT_SECONDS)

    def authenticate(self) -> AuthResult:
        """Who signed the message; raises :class:`InauthenticError` or
        :class:`UnableToAuthenticateError` as :meth:`Authenticator.authenticate`."""
        return self._authenticator().authenticate(self.signable, self.signed)

    def _authenticate(self) -> bool:
        """Upstream's name: True, or raises as :meth:`authenticate`."""
        self.authenticate()
        return True

    def is_authentic(self) -> tuple[bool, int, str]:
        """``(authentic, status_code, message)`` as upstream."""
        try:
            return self._authenticator().is_authentic(self.signable, self.signed)
        except UnableToAuthenticateError as exc:
            return False, 500, str(exc)
        except ConfigurationError as exc:  # our configuration, not the caller's fault
            return False, 500, f"MAuth is misconfigured: {exc}"

    @property
    def authenticator_type(self) -> str | None:
        return self.AUTHENTICATION_TYPE


class LocalAuthenticator(AbstractAuthenticator):
    """Checks signatures here with keys from :class:`~mauth_client.key_holder.KeyHolder`."""

    AUTHENTICATION_TYPE = "LOCAL"


class RemoteAuthenticator(AbstractAuthenticator):
    """Asks the MAuth service to check signatures (authentication tickets)."""

    AUTHENTICATION_TYPE = "REMOTE"


_ORIGINAL_IS_AUTHENTIC = AbstractAuthenticator.is_authentic


def patched_compat_authenticator() -> type[AbstractAuthenticator] | None:
    """The upstream authenticator class whose ``is_authentic`` a test suite replaced
    (``mock.patch.object(LocalAuthenticator, "is_authentic", ...)``), or None.

    Server adapters then ask it instead of their own authenticator, as upstream's
    adapters did. Two identity checks, so the unpatched path stays fast."""
    if LocalAuthenticator.is_authentic is not _ORIGINAL_IS_AUTHENTIC:
        return LocalAuthenticator
    if RemoteAuthenticator.is_authentic is not _ORIGINAL_IS_AUTHENTIC:
        return RemoteAuthenticator
    return None


def authenticate_with_patched(
    cls: type[AbstractAuthenticator], signable: Signable, signed: Signed
) -> AuthResult:
    """Run a patched ``is_authentic``; answer as :meth:`Authenticator.authenticate` does."""
    authentic, status, message = cls(signable, signed, _LOGGER).is_authentic()
    if authentic:
        # Who and which version come from the headers, as upstream's adapters read them.
        return _new_result(AuthResult, (signed.app_uuid, signed.protocol_version()))
    if status is not None and int(status) >= 500:
        raise UnableToAuthenticateError(str(message))
    raise InauthenticError(str(message))
