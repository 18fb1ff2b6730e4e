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
import threading
from collections.abc import Collection
from typing import NamedTuple

from .authenticator import (
    Authenticator,
    AuthResult,
    Prechecked,
    authenticate_with_patched,
    patched_compat_authenticator,
)
from .body import Body
from .client import build_signer
from .config import Config, without_urls
from .exceptions import (
    ConfigurationError,
    InauthenticError,
    MAuthError,
    ReplayCacheUnavailable,
    UnableToAuthenticateError,
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
    :meth:`RequestGuard.check` with ``prechecked``"."""

    status: int
    message: str
    result: AuthResult | None
    prechecked: Prechecked | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def go_on(self) -> bool:
        """True after a pre-check that let the request go on to the body."""
        return self.status == CONTINUE


_new_outcome = tuple.__new__


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
    """The shared core of the server adapters: authenticate, allow-list, sign responses.

    ``app_uuids``: when given, an authentic caller not in it gets a 403.
    ``signer``: this app's own signer, needed only to sign responses.
    """

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        *,
        config: Config | None = None,
        app_uuids: Collection[str] | None = None,
        signer: Signer | None = None,
        max_body_size: int | None = None,
    ) -> None:
        self.config = config
        self._max_body_size = max_body_size
        self._authenticator = authenticator
        self._lock = threading.Lock()  # concurrent first requests build one authenticator
        self.app_uuids = frozenset(app_uuids) if app_uuids is not None else None
        self._signer = signer

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
        if content_length is not None and (self._max_body_size is None or self._max_body_size >= 0):
            too_large = self.too_large(content_length)
            if too_large is not None:
                return too_large
        if patched_compat_authenticator() is not None:  # a patched is_authentic decides
            return Outcome(CONTINUE, "", None, None)
        try:
            signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
            authenticator = self._authenticator or self.authenticator
            prechecked = authenticator.precheck(method, query, signed, lookup=lookup)
        except MAuthError as exc:
            return self._failure(exc)
        return _new_outcome(Outcome, (CONTINUE, "", None, prechecked))

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
            return self._failure(exc)

    def lookup(self, pre: Outcome) -> Outcome:
        """Blocking: look up the key the pre-checks need (local mode), so an unknown app
        is refused before its body is read; ``pre`` again when it may go on."""
        prechecked = pre.prechecked
        authenticator = self._authenticator or self.authenticator
        if prechecked is None or authenticator.ticket_checker is not None:
            return pre
        try:
            authenticator.lookup_keys(prechecked)
        except MAuthError as exc:
            return self._failure(exc)
        return pre

    async def alookup(self, pre: Outcome) -> Outcome:
        """:meth:`lookup` for an event loop: a missing key is fetched without blocking
        the loop or taking a thread (:meth:`Authenticator.alookup_keys`). Remote mode
        needs no key here (the ticket is checked with the body)."""
        prechecked = pre.prechecked
        authenticator = self._authenticator or self.authenticator
        if prechecked is None or authenticator.ticket_checker is not None:
            return pre
        try:
            await authenticator.alookup_keys(prechecked)
        except MAuthError as exc:
            return self._failure(exc)
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
    ) -> Outcome:
        """Authenticate a request given as plain values (``headers`` may be already
        parsed; ``prechecked`` is what :meth:`precheck` found); never raises for bad
        input."""
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
            logger.warning("MAuth: app %r is authentic but not allowed here", result.app_uuid)
            return Outcome(
                403, f"app {result.app_uuid} is not allowed to call this endpoint", result
            )
        return _new_outcome(Outcome, (200, "", result, None))  # the hot path: no NamedTuple frame

    @staticmethod
    def _failure(exc: MAuthError) -> Outcome:
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
        return Outcome(401, f"the request could not be read: {exc}", None)

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
