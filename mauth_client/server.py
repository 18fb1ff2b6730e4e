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
    authenticate_with_patched,
    patched_compat_authenticator,
    signed_version,
)
from .body import Body
from .client import build_signer
from .config import Config, authz_settings_from_env
from .exceptions import (
    ConfigurationError,
    InauthenticError,
    MAuthError,
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


class Outcome(NamedTuple):
    """The result of checking a request: ``status`` 200 lets it through.

    ``permissions``: what the caller was granted (empty when no permissions are
    configured, or when the request was turned away before they were looked up).
    """

    status: int
    message: str
    result: AuthResult | None
    permissions: frozenset[str] = NO_PERMISSIONS

    @property
    def ok(self) -> bool:
        return self.status == 200


_new_outcome = tuple.__new__

#: The only body text of a 401 and of a 403 when error detail is off (MAUTH_ERROR_DETAIL).
GENERIC_MESSAGES = {401: "authentication failed", 403: "forbidden"}
_EVENT_OUTCOMES = {200: "authentic", 401: "inauthentic", 403: "forbidden"}


def error_body(message: str) -> bytes:
    """``{"errors": {"mauth": [message]}}`` (section 7)."""
    return json.dumps({"errors": {"mauth": [message]}}).encode("utf-8")


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
        permissions: PermissionsSpec | Permissions | None = None,
        rules: Iterable[RuleLike | Rule] | Rules | None = None,
    ) -> None:
        self.config = config
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

    def check(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike | Signed,
        body: Body,
        *,
        app_uuids: Collection[str] | None = None,
        required: frozenset[str] = NO_PERMISSIONS,
    ) -> Outcome:
        """Authenticate, then authorize, a request given as plain values (``headers``
        may be already parsed); never raises for bad input.

        ``required``: permissions this route needs beyond those of ``rules`` (a
        decorator's ``permissions=``).
        """
        span_tracer = observability.tracer()
        if span_tracer is None and not observability.listeners:
            outcome = self._check(method, path, query, headers, body, app_uuids, required)
        else:
            outcome = self._observed_check(
                span_tracer, method, path, query, headers, body, app_uuids, required
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
        required: frozenset[str],
    ) -> Outcome:
        allowed = self.app_uuids if app_uuids is None else app_uuids
        try:
            signable = RequestSignable(method=method, path=path, query_string=query, body=body)
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            patched = patched_compat_authenticator()  # upstream suites patch is_authentic
            if patched is not None:
                result = authenticate_with_patched(patched, signable, signed)
            else:
                result = (self._authenticator or self.authenticator).authenticate(signable, signed)
        except InauthenticError as exc:
            return Outcome(401, str(exc), None)
        except UnableToAuthenticateError as exc:
            return Outcome(500, str(exc), None)
        except ConfigurationError as exc:
            logger.error("MAuth is misconfigured: %s", exc)
            return Outcome(500, f"MAuth is misconfigured: {exc}", None)
        except MAuthError as exc:  # a request we could not even describe: not authentic
            logger.log(self.failure_log_level, "MAuth: the request could not be read: %s", exc)
            return Outcome(401, f"the request could not be read: {exc}", None)
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
                return _new_outcome(Outcome, (200, "", result, NO_PERMISSIONS))
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
            return Outcome(403, message, result, granted)
        return _new_outcome(Outcome, (200, "", result, granted))

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
                    _EVENT_OUTCOMES.get(status, "error"),
                    None,
                    None,
                    message,
                )
        outcome = Outcome(status, message, None)
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
        required: frozenset[str],
    ) -> Outcome:
        """:meth:`_check` inside a ``mauth.authenticate`` span, reported as an event."""
        start = time.perf_counter()
        if span_tracer is None:  # listeners only: no context manager on this path
            outcome = self._check(method, path, query, headers, body, app_uuids, required)
            self._report(None, start, outcome, headers)
            return outcome
        with observability.authentication_span(span_tracer) as span:
            outcome = self._check(method, path, query, headers, body, app_uuids, required)
            self._report(span, start, outcome, headers)
        return outcome

    @staticmethod
    def _report(
        span: object | None, start: float, outcome: Outcome, headers: HeadersLike | Signed
    ) -> None:
        result = outcome.result
        app_uuid: str | None
        version: int | None
        if result is not None:
            app_uuid, version = result.app_uuid, result.protocol_version
        else:  # what the request claims
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            app_uuid, version = signed.app_uuid or None, signed_version(signed)
        observability.finish_authentication(
            span,
            start,
            _EVENT_OUTCOMES.get(outcome.status, "error"),
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
