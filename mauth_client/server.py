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
    authenticate_with_patched,
    patched_compat_authenticator,
)
from .body import Body
from .client import build_signer
from .config import Config
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


class Outcome(NamedTuple):
    """The result of checking a request: ``status`` 200 lets it through."""

    status: int
    message: str
    result: AuthResult | None

    @property
    def ok(self) -> bool:
        return self.status == 200


_new_outcome = tuple.__new__


def error_body(message: str) -> bytes:
    """``{"errors": {"mauth": [message]}}`` (section 7)."""
    return json.dumps({"errors": {"mauth": [message]}}).encode("utf-8")


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
    ) -> None:
        self.config = config
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

    def check(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeadersLike | Signed,
        body: Body,
        *,
        app_uuids: Collection[str] | None = None,
    ) -> Outcome:
        """Authenticate a request given as plain values (``headers`` may be already
        parsed); never raises for bad input."""
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
        except ReplayCacheUnavailable as exc:  # fail closed: try again later (issue 12)
            return Outcome(503, str(exc), None)
        except UnableToAuthenticateError as exc:
            return Outcome(500, str(exc), None)
        except ConfigurationError as exc:
            logger.error("MAuth is misconfigured: %s", exc)
            return Outcome(500, f"MAuth is misconfigured: {exc}", None)
        except MAuthError as exc:  # a request we could not even describe: not authentic
            return Outcome(401, f"the request could not be read: {exc}", None)
        if allowed is not None and result.app_uuid not in allowed:
            logger.warning("MAuth: app %r is authentic but not allowed here", result.app_uuid)
            return Outcome(
                403, f"app {result.app_uuid} is not allowed to call this endpoint", result
            )
        return _new_outcome(Outcome, (200, "", result))  # the hot path: no NamedTuple frame

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
