"""What every server-side adapter does, framework-free (``mauth-protocol.md`` sections 4 and 7).

An adapter translates its framework's request into plain values, calls
:meth:`RequestGuard.check`, and translates the :class:`Outcome` back: a 401/403/500
JSON error (:func:`error_body`), or the app called with the caller's app UUID.
Response signing (:meth:`RequestGuard.response_headers`) uses the protocol version
the request came with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Collection, Iterable
from typing import NamedTuple

from . import observability
from .authenticator import (
    Authenticator,
    AuthResult,
    Prechecked,
    authenticate_with_patched,
    patched_compat_authenticator,
    signed_version,
)
from .body import Body
from .client import build_signer
from .config import Config, authz_settings_from_env, without_urls
from .exceptions import (
    ConfigurationError,
    InauthenticError,
    MAuthError,
    ReplayCacheUnavailable,
    UnableToAuthenticateError,
)
from .permissions import (
    NO_PERMISSIONS,
    PermissionLookupError,
    Permissions,
    PermissionsSpec,
    Rule,
    RuleLike,
    Rules,
    compile_rules,
    load_permissions,
)
from .signable import RequestSignable, ResponseSignable
from .signed import HeadersLike, Signed
from .signer import Signer

logger = logging.getLogger("mauth_client")

JSON_CONTENT_TYPE = "application/json"


CONTINUE = 100  # Outcome.status of a request that passed the checks needing no body


class Outcome(NamedTuple):
    """The result of checking a request: ``status`` 200 lets it through; after
    :meth:`RequestGuard.precheck`, ``CONTINUE`` (100) means "read the body and call
    :meth:`RequestGuard.check` with ``prechecked``".

    ``permissions``: what the caller was granted (empty when no permissions are
    configured, or when the request was turned away before they were looked up).
    """

    status: int
    message: str
    result: AuthResult | None
    prechecked: Prechecked | None = None
    permissions: frozenset[str] = NO_PERMISSIONS

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def go_on(self) -> bool:
        """True after a pre-check that let the request go on to the body."""
        return self.status == CONTINUE


_new_outcome = tuple.__new__

#: The only body text of a 401 and of a 403 when error detail is off (MAUTH_ERROR_DETAIL).
GENERIC_MESSAGES = {401: "authentication failed", 403: "forbidden"}
_EVENT_OUTCOMES = {200: "authentic", 403: "forbidden"}


def _event_outcome(status: int) -> str:
    """An event's ``outcome`` for a status: other refusals (401, 413) are inauthentic."""
    return _EVENT_OUTCOMES.get(status) or ("inauthentic" if status < 500 else "error")


def error_body(message: str) -> bytes:
    """``{"errors": {"mauth": [message]}}`` (section 7), as ``json.dumps`` writes it.

    The message is the only variable part: it is escaped by json's own (C) string
    encoder, without ``json.dumps``' per-call set-up (a quarter of the cost; every
    refused request pays it)."""
    return b'{"errors": {"mauth": [%s]}}' % _json_string(message).encode("ascii")


_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses by default


def is_exempt(path: str, exempt: Collection[str]) -> bool:
    """True if ``path`` is listed, or starts with a listed prefix that ends in ``*``."""
    if path in exempt:
        return True
    return any(item.endswith("*") and path.startswith(item[:-1]) for item in exempt)


class RequestGuard:
    """The shared core of the server adapters: authenticate, allow-list, authorize,
    sign responses.

    ``app_uuids``: when given, an authentic caller not in it gets a 403.
    ``signer``: this app's own signer, needed only to sign responses.
    ``permissions``: what each app may do (default: ``config.permissions``, or
    ``MAUTH_PERMISSIONS_FILE``); ``rules``: ``(method, path pattern, permission)``
    triples, checked here, so a bad one fails where it is given. An authentic caller
    lacking a required permission gets a 403 naming it.
    """

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        *,
        config: Config | None = None,
        app_uuids: Collection[str] | None = None,
        signer: Signer | None = None,
        max_body_size: int | None = None,
        permissions: PermissionsSpec | Permissions | None = None,
        rules: Iterable[RuleLike | Rule] | Rules | None = None,
    ) -> None:
        self.config = config
        self._max_body_size = max_body_size
        self._authenticator = authenticator
        self._lock = threading.Lock()  # concurrent first requests build one authenticator
        self.app_uuids = frozenset(app_uuids) if app_uuids is not None else None
        self._signer = signer
        # Authorization and observability settings, read now: a bad permissions file or
        # rule fails at start-up, not on the first request.
        settings = config if config is not None else Config(**authz_settings_from_env(os.environ))
        self.rules = compile_rules(rules)
        self.permissions = (
            load_permissions(permissions) if permissions is not None else settings.permission_grants
        )
        #: True when looking up permissions may block (a callable): run checks off the loop.
        self.permissions_may_block = self.permissions is not None and self.permissions.may_block
        self.error_detail = settings.error_detail
        self.failure_log_level = settings.failure_level

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            with self._lock:
                if self._authenticator is None:
                    # The key is decrypted (KMS) when the key service is first called.
                    config = self.config or Config.from_env(resolve_private_key=False)
                    self._authenticator = Authenticator.from_config(config)
        return self._authenticator

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            config = (self.config or Config.from_env()).resolved()
            self._signer, _ = build_signer(config.app_uuid, config.private_key, "v1,v2", config)
        return self._signer

    @property
    def max_body_size(self) -> int | None:
        """Bodies above this many bytes get a 413 (None: unlimited); from the
        constructor, else ``MAUTH_MAX_BODY_SIZE`` of the config or environment."""
        if self._max_body_size is None:
            config = self.config or Config.from_env(resolve_private_key=False)
            self._max_body_size = config.max_body_size if config.max_body_size is not None else -1
        return None if self._max_body_size < 0 else self._max_body_size

    def too_large(self, content_length: int | None) -> Outcome | None:
        """A 413 when a declared or counted body size exceeds ``max_body_size``."""
        limit = self.max_body_size
        if limit is not None and content_length is not None and content_length > limit:
            return Outcome(413, f"the request body exceeds {limit} bytes", None)
        return None

    def precheck(
        self,
        method: str,
        query: str,
        headers: HeadersLike | Signed,
        *,
        content_length: int | None = None,
        lookup: bool = True,
    ) -> Outcome:
        """Every check that needs no body, run by adapters before they read it: headers
        present and well-formed, method, app UUID shape, time window, token, declared
        size, and (with ``lookup``) whether the app is known. ``CONTINUE`` lets the
        request go on to :meth:`check` with ``prechecked=outcome.prechecked``; anything
        else is the answer to send, the body unread. Never raises for bad input."""
        start = time.perf_counter()
        if content_length is not None and (self._max_body_size is None or self._max_body_size >= 0):
            too_large = self.too_large(content_length)
            if too_large is not None:
                return self._early(too_large, start, headers)
        if patched_compat_authenticator() is not None:  # a patched is_authentic decides
            return Outcome(CONTINUE, "", None, None)
        try:
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            authenticator = self._authenticator or self.authenticator
            prechecked = authenticator.precheck(method, query, signed, lookup=lookup)
        except MAuthError as exc:
            return self._early(self._failure(exc), start, headers)
        return _new_outcome(Outcome, (CONTINUE, "", None, prechecked, NO_PERMISSIONS))

    def cached(self, pre: Outcome) -> Outcome | None:
        """Without blocking: ``pre`` again when the signature can be verified with no
        I/O (local mode, the key cached), an error outcome when the cache already
        answers "unknown app", None when a key fetch (or a remote ticket) is needed."""
        prechecked = pre.prechecked
        authenticator = self._authenticator or self.authenticator
        if prechecked is None or authenticator.ticket_checker is not None:
            return None
        if authenticator.replay is not None and authenticator.replay.blocking:
            return None  # recording in Redis is a network round trip (issue 12)
        try:
            return pre if authenticator.cached_keys(prechecked) else None
        except MAuthError as exc:
            return self._early(self._failure(exc), time.perf_counter(), None)

    async def alookup(self, pre: Outcome) -> Outcome:
        """For an event loop: the key the pre-checks need (local mode), so an unknown app
        is refused before its body is read; a missing key is fetched without blocking
        the loop or taking a thread (:meth:`Authenticator.alookup_keys`). Remote mode
        needs no key here (the ticket is checked with the body)."""
        prechecked = pre.prechecked
        authenticator = self._authenticator or self.authenticator
        if prechecked is None or authenticator.ticket_checker is not None:
            return pre
        try:
            await authenticator.alookup_keys(prechecked)
        except MAuthError as exc:  # an early refusal: no detail when it is off, one event
            return self._early(self._failure(exc), time.perf_counter(), None)
        return pre

    def check(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike | Signed,
        body: Body,
        *,
        app_uuids: Collection[str] | None = None,
        prechecked: Prechecked | None = None,
        required: frozenset[str] = NO_PERMISSIONS,
    ) -> Outcome:
        """Authenticate, then authorize, a request given as plain values (``headers``
        may be already parsed; ``prechecked`` is what :meth:`precheck` found); never
        raises for bad input.

        ``required``: permissions this route needs beyond those of ``rules`` (a
        decorator's ``permissions=``).
        """
        span_tracer = observability.tracer()
        if span_tracer is None and not observability.listeners:
            outcome = self._check(
                method, path, query, headers, body, app_uuids, prechecked, required
            )
        else:
            outcome = self._observed_check(
                span_tracer, method, path, query, headers, body, app_uuids, prechecked, required
            )
        if outcome[0] == 200 or self.error_detail:
            return outcome
        return self._without_detail(outcome)

    def _check(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike | Signed,
        body: Body,
        app_uuids: Collection[str] | None,
        prechecked: Prechecked | None,
        required: frozenset[str],
    ) -> Outcome:
        allowed = self.app_uuids if app_uuids is None else app_uuids
        try:
            signable = RequestSignable.received(method, path, query, body)
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            # Upstream suites patch is_authentic; a pre-check that ran looked already.
            patched = patched_compat_authenticator() if prechecked is None else None
            if patched is not None:
                result = authenticate_with_patched(patched, signable, signed)
            else:
                result = (self._authenticator or self.authenticator).authenticate(
                    signable, signed, prechecked
                )
        except MAuthError as exc:
            return self._failure(exc)
        if allowed is not None and result.app_uuid not in allowed:
            logger.log(
                self.failure_log_level,
                "MAuth: app %r is authentic but not allowed here",
                result.app_uuid,
            )
            return Outcome(
                403, f"app {result.app_uuid} is not allowed to call this endpoint", result
            )
        return self._authorize(result, method, path, required)

    def _failure(self, exc: MAuthError) -> Outcome:
        if isinstance(exc, InauthenticError):
            return Outcome(401, str(exc), None)
        if isinstance(exc, ReplayCacheUnavailable):  # fail closed: try again later (issue 12)
            return Outcome(503, without_urls(str(exc)), None)
        if isinstance(exc, UnableToAuthenticateError):
            return Outcome(500, without_urls(str(exc)), None)
        if isinstance(exc, ConfigurationError):
            logger.error("MAuth is misconfigured: %s", exc)
            return Outcome(500, without_urls(f"MAuth is misconfigured: {exc}"), None)
        # A request we could not even describe: not authentic.
        logger.log(self.failure_log_level, "MAuth: the request could not be read: %s", exc)
        return Outcome(401, f"the request could not be read: {exc}", None)

    # --- authorization (issue 13): a separate step after authentication -----------------

    def _authorize(
        self, result: AuthResult, method: str, path: str, required: frozenset[str]
    ) -> Outcome:
        """403 naming what an authentic caller lacks of the permissions this request
        needs (``required`` plus the matching ``rules``); 500 if looking them up fails."""
        needed = self.rules.required(method, path) if self.rules else required
        if required and self.rules:
            needed = needed | required
        grants = self.permissions
        if grants is None:
            if not needed:  # the hot path without authorization: nothing to look up
                return _new_outcome(Outcome, (200, "", result, None, NO_PERMISSIONS))
            logger.error(
                "MAuth: this route requires permissions but none are configured; set "
                "MAUTH_PERMISSIONS_FILE or Config(permissions=...)"
            )
            granted = NO_PERMISSIONS
        else:
            try:
                granted = grants.granted(result.app_uuid)
            except PermissionLookupError as exc:
                logger.error(
                    "MAuth: looking up the permissions of app %r failed: %s",
                    result.app_uuid,
                    exc,
                    exc_info=exc.__cause__,
                )
                return Outcome(500, "the caller's permissions could not be looked up", result)
        if needed and not needed <= granted:
            missing = needed - granted
            names = ", ".join(repr(name) for name in sorted(missing))
            plural = "s" if len(missing) > 1 else ""
            message = f"app {result.app_uuid} lacks the permission{plural} {names}"
            logger.log(self.failure_log_level, "MAuth: %s (%s %s)", message, method, path)
            return Outcome(403, message, result, permissions=granted)
        return _new_outcome(Outcome, (200, "", result, None, granted))

    # --- error detail and observability (issue 13) -------------------------------------

    def reject(self, status: int, message: str) -> Outcome:
        """An adapter's own refusal (e.g. an unreadable body) as an :class:`Outcome`:
        logged, reported as an event, and without detail when error detail is off."""
        logger.log(self.failure_log_level, "MAuth: request refused (%d): %s", status, message)
        span_tracer = observability.tracer()
        if span_tracer is not None or observability.listeners:
            with observability.authentication_span(span_tracer) as span:
                observability.finish_authentication(
                    span,
                    time.perf_counter(),
                    _event_outcome(status),
                    None,
                    None,
                    message,
                )
        outcome = Outcome(status, message, None)
        return outcome if self.error_detail else self._without_detail(outcome)

    def _early(
        self, outcome: Outcome, start: float, headers: HeadersLike | Signed | None
    ) -> Outcome:
        """A refusal before the body (pre-checks): reported as the attempt's event, and
        without detail when error detail is off, as :meth:`check`'s refusals."""
        span_tracer = observability.tracer()
        if span_tracer is not None or observability.listeners:
            with observability.authentication_span(span_tracer) as span:
                self._report(span, start, outcome, headers)
        return outcome if self.error_detail else self._without_detail(outcome)

    @staticmethod
    def _without_detail(outcome: Outcome) -> Outcome:
        generic = GENERIC_MESSAGES.get(outcome.status)
        return outcome if generic is None else outcome._replace(message=generic)

    def _observed_check(
        self,
        span_tracer: object | None,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike | Signed,
        body: Body,
        app_uuids: Collection[str] | None,
        prechecked: Prechecked | None,
        required: frozenset[str],
    ) -> Outcome:
        """:meth:`_check` inside a ``mauth.authenticate`` span, reported as an event."""
        start = time.perf_counter()
        if span_tracer is None:  # listeners only: no context manager on this path
            outcome = self._check(
                method, path, query, headers, body, app_uuids, prechecked, required
            )
            result = outcome[2]
            if outcome[0] == 200 and result is not None:  # the common case, kept short
                observability.emit_authentic(result[0], result[1], start)
            else:
                self._report(None, start, outcome, headers)
            return outcome
        with observability.authentication_span(span_tracer) as span:
            outcome = self._check(
                method, path, query, headers, body, app_uuids, prechecked, required
            )
            self._report(span, start, outcome, headers)
        return outcome

    @staticmethod
    def _report(
        span: object | None,
        start: float,
        outcome: Outcome,
        headers: HeadersLike | Signed | None,
    ) -> None:
        result = outcome.result
        app_uuid: str | None = None
        version: int | None = None
        if result is not None:
            app_uuid, version = result.app_uuid, result.protocol_version
        elif headers is not None:  # what the request claims
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            app_uuid, version = signed.app_uuid or None, signed_version(signed)
        observability.finish_authentication(
            span,
            start,
            _event_outcome(outcome.status),
            app_uuid,
            observability.version_label(version),
            outcome.message,
        )

    def response_headers(
        self, status: int, body: Body, protocol_version: int | None
    ) -> dict[str, str]:
        """MAuth headers for a response, in the version the request used (V1 and V2 for
        a request that was not signed)."""
        signable = ResponseSignable(status, body)
        if protocol_version == 2:
            return self.signer.signed_headers_v2(signable)
        if protocol_version == 1:
            return self.signer.signed_headers_v1(signable)
        return {
            **self.signer.signed_headers_v1(signable),
            **self.signer.signed_headers_v2(signable),
        }
