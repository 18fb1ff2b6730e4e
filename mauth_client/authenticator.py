"""Authenticating received messages (``mauth-protocol.md`` section 4).

:class:`Authenticator` is the policy: which version to check, V2-to-V1 fallback,
V2-only, the time window, the token, and then the signature, checked here with a
public key (local mode) or by the MAuth service (remote mode). Its collaborators
(key source, ticket checker, clock, logger) are injected.

``LocalAuthenticator`` and ``RemoteAuthenticator`` keep upstream's
``(signable, signed, logger).is_authentic()`` API on top of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import threading
import time as _time
from collections.abc import Callable, Collection, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from . import observability
from .config import Config, environment_fingerprint, without_urls
from .consts import ALLOWED_DRIFT_SECONDS, MWS_TOKEN, MWSV2_TOKEN
from .exceptions import (
    ConfigurationError,
    InauthenticError,
    MAuthError,
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
from .upstream_query import upstream_encode_query
from .verifier import decode_signature, recover_v1, recover_v2

if TYPE_CHECKING:  # httpx is an extra: imported on the first async ticket
    from .key_service_httpx import AsyncMAuthServiceClient

Clock = Callable[[], float]
_LOGGER = logging.getLogger("mauth_client")
_MAX_TIME_DIGITS = 12  # up to year 33658; longer is "too large to be a time"


class AuthResult(NamedTuple):
    """What an authentic message told us."""

    app_uuid: str
    protocol_version: int


_new_result = tuple.__new__  # skips the NamedTuple's Python-level __new__ on the hot path


def signed_version(signed: Signed) -> int | None:
    """The version a failed attempt was judged by: V2 when present (section 4.5)."""
    if signed.v2 is not None:
        return 2
    return 1 if signed.v1 is not None else None


class TicketChecker(Protocol):
    """Remote mode: asks the MAuth service whether a signature is authentic."""

    def check(self, signable: RequestSignable, info: SignatureInfo) -> None: ...


# Remote mode on an event loop (async_guard): the verdicts of the tickets already asked
# for in this task, keyed by (version, signature); None for an authentic one.
_TICKET_VERDICTS: ContextVar[dict[tuple[int, str | None], MAuthError | None] | None] = ContextVar(
    "mauth_ticket_verdicts", default=None
)


class TicketNeeded(BaseException):
    """Raised through :meth:`Authenticator.authenticate` (never caught by it: not an
    :class:`MAuthError`) when an async adapter's check needs a ticket verdict it has
    not asked the service for yet; the adapter awaits :meth:`RemoteTicketChecker.acheck`
    and checks again. Never seen outside :mod:`mauth_client.async_guard`."""

    def __init__(
        self, checker: RemoteTicketChecker, signable: RequestSignable, info: SignatureInfo
    ) -> None:
        super().__init__("a remote ticket verdict is needed")
        self.checker, self.signable, self.info = checker, signable, info
        self.key = (info.version, info.signature)


class RemoteTicketChecker:
    """Checks signatures through the service's ``authentication_tickets`` endpoint (section 5).

    :meth:`acheck` asks on ``httpx.AsyncClient`` (an event loop, no thread)."""

    def __init__(self, client: MAuthServiceClient) -> None:
        self.client = client
        self._async_client: AsyncMAuthServiceClient | None = None

    async def acheck(self, signable: RequestSignable, info: SignatureInfo) -> None:
        """:meth:`check` without blocking the event loop."""
        if self._async_client is None:
            from .key_service_httpx import AsyncMAuthServiceClient

            self._async_client = AsyncMAuthServiceClient(self.client.config)
        await self._async_client.check_ticket(signable, info)

    def check(self, signable: RequestSignable, info: SignatureInfo) -> None:
        verdicts = _TICKET_VERDICTS.get()
        if verdicts is not None:  # an async adapter's check: the verdicts it awaited
            key = (info.version, info.signature)
            if key not in verdicts:
                raise TicketNeeded(self, signable, info)
            error = verdicts[key]
            if error is not None:
                raise error
            return
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
        failure_log_level: int = logging.WARNING,
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
        #: The level of each "authentication failed" line (MAUTH_FAILURE_LOG_LEVEL).
        self.failure_log_level = failure_log_level
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
        self._v1_query_warned: set[str | None] = set()  # apps told once: V1 skips the query

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
            failure_log_level=config.failure_level,
            replay_cache=cache_from_setting(config.replay_cache, clock=clock),
            replay_methods=config.replay_methods,
            replay_fail_open=config.replay_fail_open,
        )

    # --- outcomes ---------------------------------------------------------------------

    def precheck(
        self, method: str | None, query: str, signed: Signed, *, lookup: bool = True
    ) -> Prechecked:
        """Every check that needs no body (section 4 steps 1 to 3, plus shape checks).

        Adapters call this before reading the body, so an unsigned or malformed
        request costs nothing more. ``method`` is None for a response. With
        ``lookup``, a local-mode authenticator also looks up the public key (a fetch
        for an app not seen before), so an unknown app is refused before its body is
        read too. Raises :class:`InauthenticError` (one WARNING logged) when no
        signature is worth verifying, :class:`UnableToAuthenticateError` when a key
        lookup cannot be answered.
        """
        v2 = signed.v2
        if method is None or method[:1] in _LETTERS:
            # The common cases, lean: a V2 signature, or a V1-only one where V1 is
            # allowed, passing its header checks. A V1 fallback (no query, fallback
            # allowed) is parsed only if V2 fails.
            first = v2 if v2 is not None or self.v2_only else signed.v1
            shaped = False  # otherwise the general path below says why, with the fallback
            if first is not None:
                try:
                    self._check_time_and_token(first)
                except InauthenticError:
                    pass
                else:
                    shaped = is_uuid_shaped(first.app_uuid)
            if shaped and first is not None:
                fallback = not (
                    first.version == 1 or self.v2_only or self.disable_fallback_to_v1 or query
                )
                if first.version == 1 and query:
                    self._warn_v1_query(first.app_uuid)
                checked = Prechecked(
                    (first,), (), {}, {first.version}, signed if fallback else None
                )
                if lookup and self.ticket_checker is None:
                    try:
                        self._key_for(first, checked.keys)
                    except InauthenticError as exc:
                        checked.drop_first(exc)
                        self.lookup_keys(checked)
                return checked
        if v2 is None:
            v1 = signed.v1
            if v1 is None:
                self.logger.log(
                    self.failure_log_level, "MAuth authentication failed: no signature present"
                )
                # Word for word what upstream's clients answer: suites assert this body.
                raise MAuthNotPresent(
                    "Authentication Failed. No mAuth signature present; X-MWS-Authentication "
                    "header is blank, MCC-Authentication header is blank."
                )
            if self.v2_only:
                self.logger.log(
                    self.failure_log_level, "MAuth authentication failed: V2 required, V1 sent"
                )
                raise MissingV2Error(
                    "This service requires mAuth v2 mcc-authentication header but only v1 "
                    "x-mws-authentication is present"
                )
            if query:
                self._warn_v1_query(v1.app_uuid)
            infos: tuple[SignatureInfo, ...] = (v1,)
        elif self.v2_only or self.disable_fallback_to_v1 or query:
            # V1 does not sign the query (section 3): falling back to it for a request
            # with a query would accept a V1+V2 request replayed with another query.
            infos = (v2,)
        else:
            v1 = signed.v1  # read only now: most messages never need it (section 4.5)
            infos = (v2,) if v1 is None else (v2, v1)
        failures: list[tuple[SignatureInfo, InauthenticError]] = []
        if method is not None and not _method_ok(method):
            # A V1 response signature ("200\n...") would otherwise replay as a request
            # whose method is "200" (section 2: methods are tokens starting with a letter).
            error = InauthenticError(
                "the request method must start with a letter; this one cannot be signed"
            )
            self._fail([(infos[0], error)])
        passed: list[SignatureInfo] = []
        for index, info in enumerate(infos):
            try:
                self._precheck_one(info)
            except InauthenticError as exc:
                failures.append((info, exc.with_traceback(None)))  # see _fail
            else:
                passed.extend(infos[index:])  # a fallback is pre-checked only if needed
                break
        if not passed:
            self._fail(failures)
        checked = Prechecked(tuple(passed), tuple(failures), {}, {passed[0].version}, None)
        if lookup and self.ticket_checker is None:
            try:  # the common case inline: the first candidate's key
                self._key_for(passed[0], checked.keys)
            except InauthenticError as exc:
                checked.drop_first(exc)
                self.lookup_keys(checked)
        return checked

    def lookup_keys(self, checked: Prechecked) -> None:
        """Look up keys in order until one candidate has a key; candidates of unknown
        apps are dropped. May block on the key service (a fetch)."""
        while checked.candidates or checked.add_fallback():
            info = checked.candidates[0]
            try:
                self._ensure_prechecked(info, checked)
                self._key_for(info, checked.keys)
            except InauthenticError as exc:
                checked.drop_first(exc)
                continue
            return
        self._fail(list(checked.failures))

    async def alookup_keys(self, checked: Prechecked) -> None:
        """:meth:`lookup_keys` for an event loop (asyncio): a missing key comes from the
        key source's ``aget_public_key`` (one fetch shared with threads asking for the
        same app), or from :meth:`lookup_keys` in a worker thread for a source
        without one."""
        fetch = getattr(self.key_source, "aget_public_key", None)
        if fetch is None or getattr(self.key_source, "cached_key", None) is None:
            await asyncio.get_running_loop().run_in_executor(None, self.lookup_keys, checked)
            return
        while not self.cached_keys(checked):  # raises once every candidate is refused
            info = checked.candidates[0]  # header-checked by cached_keys; its key is missing
            assert info.app_uuid is not None
            try:
                checked.keys[info.app_uuid] = _as_key(await fetch(info.app_uuid))
            except InauthenticError as exc:  # an unknown app: the next candidate
                checked.drop_first(exc)
                continue
            return

    def cached_keys(self, checked: Prechecked) -> bool:
        """Like :meth:`lookup_keys` but never blocking: True when the answer is known
        from the key source's cache (a key found, or every app cached as unknown, which
        raises), False when a fetch is needed. Sources without a ``cached_key`` method
        are taken to block."""
        peek = getattr(self.key_source, "cached_key", None)
        if peek is None:
            return False
        while checked.candidates or checked.add_fallback():
            info = checked.candidates[0]
            assert info.app_uuid is not None
            try:
                self._ensure_prechecked(info, checked)
                found = peek(info.app_uuid)
            except InauthenticError as exc:  # bad headers, or a cached "unknown app"
                checked.drop_first(exc)
                continue
            if found is None:
                return False
            checked.keys[info.app_uuid] = _as_key(found)
            return True
        self._fail(list(checked.failures))
        return True  # pragma: no cover - _fail raises

    def authenticate(
        self, signable: Signable, signed: Signed, prechecked: Prechecked | None = None
    ) -> AuthResult:
        """Authenticate ``signable`` by its headers ``signed`` (section 4), then, with
        replay protection on, record its signatures (:class:`ReplayedRequestError`
        for one seen before, :class:`ReplayCacheUnavailable` when the cache fails)."""
        result = self._authenticate_signatures(signable, signed, prechecked)
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

    def _authenticate_signatures(
        self, signable: Signable, signed: Signed, prechecked: Prechecked | None = None
    ) -> AuthResult:
        """The signatures' check (section 4).

        ``prechecked``: what :meth:`precheck` returned for these headers, when the
        adapter ran it before reading the body. A failed request logs one WARNING.
        """
        if prechecked is None:
            if isinstance(signable, RequestSignable):
                prechecked = self.precheck(signable.method, signable.query_string, signed)
            else:
                prechecked = self.precheck(None, "", signed)
        failures = list(prechecked.failures)
        refreshed: set[str] = set()  # apps whose key was already asked again (see below)
        index = 0
        while index < len(prechecked.candidates) or prechecked.add_fallback():
            info = prechecked.candidates[index]
            index += 1
            try:
                if info.version not in prechecked.prechecked:
                    self._ensure_prechecked(info, prechecked)
                checked = self._authenticate_one(signable, info, prechecked.keys, refreshed)
            except InauthenticError as exc:
                failures.append((info, exc.with_traceback(None)))  # see _fail
                continue
            if not isinstance(checked, InauthenticError):
                return checked
            failures.append((info, checked))  # never raised: no traceback to drop
        self._fail(failures)

    def _precheck_one(self, info: SignatureInfo) -> None:
        """Section 4 steps 2 and 3 and the app UUID's shape, for one signature."""
        self._check_time_and_token(info)
        if not is_uuid_shaped(info.app_uuid):
            raise InauthenticError(
                f"the app UUID {info.app_uuid!r} is not a UUID (8-4-4-4-12 hexadecimal digits)"
            )

    def _ensure_prechecked(self, info: SignatureInfo, checked: Prechecked) -> None:
        if info.version not in checked.prechecked:
            self._precheck_one(info)
            checked.prechecked.add(info.version)

    def _fail(self, failures: list[tuple[SignatureInfo, InauthenticError]]) -> NoReturn:
        """Log one line (at ``failure_log_level``, WARNING by default) and raise: V1's
        reason first, then why V2 failed (as before).

        The exception raised is a new one (of the same type, with the combined
        message): re-raising a recorded one would tie it, through its traceback, to
        the frames holding the list of failures, a cycle only the garbage collector
        frees, on every failed request."""
        if len(failures) > 1:
            failures.sort(key=_version)
        info, error = failures[0]
        message = (
            str(error) if len(failures) == 1 else f"{error} (after V2 failed: {failures[1][1]})"
        )
        # One preformatted line; a long, hostile app UUID is cut short.
        _failure_warning(
            self.logger,
            f"MAuth: app {info.app_uuid!r:.80} V{info.version} inauthentic: {message}",
            self.failure_log_level,
        )
        raise type(error)(message)

    def _warn_v1_query(self, app_uuid: str | None) -> None:
        if app_uuid in self._v1_query_warned or len(self._v1_query_warned) >= 1024:
            return
        self._v1_query_warned.add(app_uuid)
        self.logger.warning(
            "MAuth: app %r signs with V1 only, which does not cover the query string; "
            "set V2_ONLY_AUTHENTICATE once its clients sign V2",
            app_uuid,
        )

    def is_authentic(self, signable: Signable, signed: Signed) -> tuple[bool, int, str]:
        """``(True, 200, "")``, ``(False, 401, reason)`` or ``(False, 500, reason)``
        (503 when the replay cache failed).

        Reports an ``authentication`` event (:mod:`~mauth_client.observability`): this
        is the upstream-compatible entry point, which bypasses the adapters' guard.
        """
        span_tracer = observability.tracer()
        if span_tracer is None and not observability.listeners:
            return self._is_authentic(signable, signed)[0]
        start = _time.perf_counter()
        with observability.authentication_span(span_tracer) as span:
            try:
                verdict, result = self._is_authentic(signable, signed)
            except Exception as exc:  # e.g. a misconfiguration: still one event
                observability.finish_authentication(
                    span, start, "error", signed.app_uuid or None, None, str(exc)
                )
                raise
            outcome = {200: "authentic", 401: "inauthentic"}.get(verdict[1], "error")
            observability.finish_authentication(
                span,
                start,
                outcome,
                result.app_uuid if result else (signed.app_uuid or None),
                observability.version_label(
                    result.protocol_version if result else signed_version(signed)
                ),
                verdict[2],
            )
        return verdict

    def _is_authentic(
        self, signable: Signable, signed: Signed
    ) -> tuple[tuple[bool, int, str], AuthResult | None]:
        try:
            result = self.authenticate(signable, signed)
        except InauthenticError as exc:
            return (False, 401, str(exc)), None
        except ReplayCacheUnavailable as exc:
            return (False, 503, str(exc)), None
        except UnableToAuthenticateError as exc:
            return (False, 500, without_urls(str(exc))), None  # often sent as a body
        return (True, 200, ""), result

    # --- one version ------------------------------------------------------------------

    def _authenticate_one(
        self,
        signable: Signable,
        info: SignatureInfo,
        keys: dict[str, rsa.RSAPublicKey] | None = None,
        refreshed: set[str] | None = None,
    ) -> AuthResult | InauthenticError:
        """Check one signature: who signed it, or (returned, not raised) why it does not
        match the message; raises for other reasons it is not authentic, and
        :class:`UnableToAuthenticateError` when that cannot be told."""
        label = "V2" if info.version == 2 else "V1"
        self.logger.info(
            "MAuth: authenticating a message from app %r with %s", info.app_uuid, label
        )
        try:
            assert info.app_uuid is not None
            if self.ticket_checker is not None and isinstance(signable, RequestSignable):
                self.ticket_checker.check(signable, info)
            elif not (valid := self._signature_valid(signable, info, keys, refreshed)):
                # None: not even a signature (not standard base64). Returned, not raised:
                # a V2 failure followed by the V1 fallback would raise and catch twice.
                why = "is not standard base64" if valid is None else "does not match the message"
                return InauthenticError(
                    f"Signature verification failed for {label}: the {label} signature of "
                    f"app {info.app_uuid!r} {why}"
                )
        except UnableToAuthenticateError as exc:
            self.logger.error("MAuth: could not authenticate app %r: %s", info.app_uuid, exc)
            raise
        except UnableToSignError as exc:  # a malformed message description: not authentic
            raise InauthenticError(f"the message could not be read: {exc}") from None
        except UnicodeError:  # a lone surrogate in the path or query (issue 10 item 9)
            raise InauthenticError(
                "the message could not be read: its target holds a lone surrogate"
            ) from None
        except ConfigurationError as exc:  # our side is misconfigured: not the caller's fault
            self.logger.error("MAuth: cannot authenticate: %s", exc)
            raise UnableToAuthenticateError(f"MAuth is misconfigured: {exc}") from None
        return _new_result(AuthResult, (info.app_uuid, info.version))

    def _check_time_and_token(self, info: SignatureInfo) -> None:
        """Section 4 steps 2 and 3: a time within the window, the version's token."""
        text = info.time
        if len(text) <= _MAX_TIME_DIGITS and text.isdigit() and text.isascii():
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
        if not (len(text) <= _MAX_TIME_DIGITS and text.isascii() and text.isdigit()):
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

    def _key_for(self, info: SignatureInfo, keys: dict[str, rsa.RSAPublicKey]) -> rsa.RSAPublicKey:
        if self.key_source is None or info.app_uuid is None:
            raise UnableToAuthenticateError("this authenticator has no source of public keys")
        key = keys.get(info.app_uuid)
        if key is None:
            found = self.key_source.get_public_key(info.app_uuid)
            key = keys[info.app_uuid] = (
                found if not isinstance(found, (str, bytes)) else _as_key(found)
            )
        return key

    def _signature_valid(
        self,
        signable: Signable,
        info: SignatureInfo,
        keys: dict[str, rsa.RSAPublicKey] | None = None,
        refreshed: set[str] | None = None,
    ) -> bool | None:
        """One RSA operation per signature: the digest it carries is recovered once and
        compared with the message as received, then its variants (section 4.6).
        True or False; None when the signature is not even standard base64.

        ``refreshed``: the apps of this message whose key was already asked for again
        after a failure; a V1 fallback signed by the same app as the failed V2 one
        does not ask again (the source's answer, a moment later, would be the same:
        the key the V2 check ended with is in ``keys``)."""
        key = keys.get(info.app_uuid) if keys and info.app_uuid is not None else None
        if key is None:
            key = self._key_for(info, {} if keys is None else keys)
        matched = self._signature_matches(key, signable, info)
        if matched is not False:
            return matched  # True, or None: not even base64 (no key would help)
        # The app may have rotated its key: the source may fetch it again (issue 12).
        if refreshed is not None and info.app_uuid is not None:
            if info.app_uuid in refreshed:
                return False
            refreshed.add(info.app_uuid)
        refresh = getattr(self.key_source, "refresh_public_key", None)
        fresh = refresh(info.app_uuid, key) if refresh is not None else None
        if fresh is None or fresh is key:
            return False
        key = _as_key(fresh)
        if keys is not None and info.app_uuid is not None:
            keys[info.app_uuid] = key
        return self._signature_matches(key, signable, info)

    def _signature_matches(
        self, key: rsa.RSAPublicKey, signable: Signable, info: SignatureInfo
    ) -> bool | None:
        raw = decode_signature(info.signature)
        if raw is None:
            return None
        assert info.app_uuid is not None
        if info.version == 2:
            digest = recover_v2(key, raw)
            if digest is None:
                return False
            first = signable.v2_string(info.app_uuid, info.time)
            if hmac.compare_digest(hashlib.sha512(first).digest(), digest):
                return True  # the message as received: the common case
            return any(
                hmac.compare_digest(hashlib.sha512(text).digest(), digest)
                for text in _v2_variants(signable, first, info.app_uuid, info.time)
            )
        recovered = recover_v1(key, raw)
        if recovered is None:
            return False
        expected = signable.v1_hexdigest(info.app_uuid, info.time)
        if expected is not None and hmac.compare_digest(recovered, expected):
            return True  # the message as received: the common case
        for variant in signable.variants(query=False):  # built only now; V1 has no query
            expected = variant.v1_hexdigest(info.app_uuid, info.time)
            if expected is not None and hmac.compare_digest(recovered, expected):
                return True
        return False


def _v2_variants(signable: Signable, first: bytes, app_uuid: str, time: str) -> Iterator[bytes]:
    """The other V2 strings a signature may cover, once ``first`` (the message as
    received) did not match: the section 4.6 variants, then upstream 1.10.1's query
    encoding (see :mod:`mauth_client.upstream_query`)."""
    for variant in signable.variants():
        yield variant.v2_string(app_uuid, time)
    query = signable.query_string if isinstance(signable, RequestSignable) else ""
    if query and ("/" in query or "%2f" in query.lower() or "&&" in query or query[-1] == "&"):
        # Upstream differs from section 2 only on "/" (left bare) and empty parts (kept).
        upstream = upstream_encode_query(query)
        if upstream is not None:
            head, _, ours = first.rpartition(b"\n")
            alternative = upstream.encode("utf-8", "surrogateescape")
            if alternative != ours:
                yield head + b"\n" + alternative


def _failure_warning(logger: logging.Logger, line: str, level: int = logging.WARNING) -> None:
    """``logger.warning(line)`` for the one line a failed request logs, minus the stack
    walk (``findCaller``) that finds where it was called from, a fifth of logging's
    cost per failure: the record names :meth:`Authenticator._fail`, its only caller.
    Level, ``disabled``, filters, handlers and propagation are the logger's own. Other
    logger-like objects (adapters, structlog, upstream users' own) get ``.warning``."""
    if not isinstance(logger, logging.Logger):
        logger.log(level, line)  # at MAUTH_FAILURE_LOG_LEVEL (issue 13)
    elif logger.isEnabledFor(level):
        logger.handle(
            logger.makeRecord(logger.name, level, __file__, _FAIL_LINE, line, (), None, "_fail")
        )


def _version(failure: tuple[SignatureInfo, InauthenticError]) -> int:
    return failure[0].version


def _as_key(found: object) -> rsa.RSAPublicKey:
    # Key sources may answer with PEM; a key object needs no (ABC-checked) reload.
    return load_public_key(found) if isinstance(found, (str, bytes)) else found  # type: ignore[return-value]


_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _method_ok(method: str) -> bool:
    return method[:1] in _LETTERS


_UUID_SHAPE = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)


def is_uuid_shaped(value: str | None) -> bool:
    """True for 8-4-4-4-12 hexadecimal digits (any case), the whole value: anything
    else is refused before any key lookup (``mauth-protocol.md`` section 1). App
    UUIDs that passed are remembered (a bounded set): the same few callers come back."""
    if value in _SHAPED_UUIDS:
        return True
    if value is None or len(value) != 36 or _UUID_SHAPE.fullmatch(value) is None:
        return False
    if len(_SHAPED_UUIDS) >= 4096:
        _SHAPED_UUIDS.clear()
    _SHAPED_UUIDS.add(value)
    return True


_SHAPED_UUIDS: set[str | None] = set()
_FAIL_LINE = Authenticator._fail.__code__.co_firstlineno


class Prechecked:
    """What :meth:`Authenticator.precheck` found: the signatures worth verifying, in
    order (a fallback's header checks run only when it is needed), the reasons
    others were refused, and the public keys looked up so far."""

    __slots__ = ("_fallback", "candidates", "failures", "keys", "prechecked")

    def __init__(
        self,
        candidates: tuple[SignatureInfo, ...],
        failures: tuple[tuple[SignatureInfo, InauthenticError], ...],
        keys: dict[str, rsa.RSAPublicKey],
        prechecked: set[int],
        fallback: Signed | None,
    ) -> None:
        self.candidates = candidates
        self.failures = failures
        self.keys = keys
        self.prechecked = prechecked  # versions whose header checks passed already
        self._fallback = fallback  # headers whose V1 may still be tried

    def add_fallback(self) -> bool:
        """Append the V1 signature, once, when a fallback to it is allowed and it is
        present; True when a candidate was added."""
        signed, self._fallback = self._fallback, None
        v1 = signed.v1 if signed is not None else None
        if v1 is None:
            return False
        self.candidates = (*self.candidates, v1)
        return True

    def drop_first(self, error: InauthenticError) -> None:
        # Without its traceback, which would hold the frames that hold this (see _fail).
        self.failures = (*self.failures, (self.candidates[0], error.with_traceback(None)))
        self.candidates = self.candidates[1:]


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
