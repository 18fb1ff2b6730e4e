"""MAuth for AWS Lambda: upstream's ``LambdaAuthenticator`` and an event helper.

    authentic, status, message = LambdaAuthenticator(method, url, headers, body).is_authentic()
    result = authenticate_event(event)      # API Gateway REST (v1), HTTP API (v2) or ALB

Configuration comes from the environment (or ``config=``). Keys are fetched once
per cold start and cached across invocations of a warm container.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

from .authenticator import Authenticator, default_authenticator
from .config import Config
from .exceptions import ConfigurationError
from .server import RequestGuard
from .signable import split_url
from .signed import Signed

_guard: RequestGuard | None = None
_lock = threading.Lock()


def _default_guard() -> RequestGuard:
    """One guard per container, so keys stay cached between invocations; over the
    process-wide default authenticator, so it follows the environment and ``Config``'s
    class attributes as ``LocalAuthenticator`` does (rebuilt only when they change)."""
    global _guard
    try:
        authenticator = default_authenticator()
    except ConfigurationError:
        return RequestGuard()  # answers each request with a JSON 500 naming what to set
    guard = _guard
    if guard is None or guard.authenticator is not authenticator:
        with _lock:
            guard = _guard
            if guard is None or guard.authenticator is not authenticator:
                guard = _guard = RequestGuard(authenticator)
    return guard


# One guard (so one key cache) per Config: authenticate_event(event, config=cfg) in a
# warm container fetches each key once, not on every invocation. Bounded.
_guards: dict[Config, RequestGuard] = {}
_MAX_GUARDS = 32


def _guard_for(authenticator: Authenticator | None, config: Config | None) -> RequestGuard:
    if authenticator is not None:
        return RequestGuard(authenticator, config=config)  # its own cache: nothing to keep
    if config is None:
        return _default_guard()
    guard = _guards.get(config)
    if guard is None:
        with _lock:
            guard = _guards.get(config)
            if guard is None:
                if len(_guards) >= _MAX_GUARDS:
                    del _guards[next(iter(_guards))]  # the oldest
                guard = _guards[config] = RequestGuard(config=config)
    return guard


class LambdaAuthenticator:
    """Upstream's API: ``is_authentic() -> (authentic, status_code, message)``."""

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, Any] | None,
        body: str | bytes | None,
        *,
        authenticator: Authenticator | None = None,
        config: Config | None = None,
    ) -> None:
        self.method = method
        self.url = url
        # Anything but a mapping of names to strings is no headers (issue 10 item 9).
        self.headers = (
            {k: v for k, v in headers.items() if isinstance(v, (str, bytes))}
            if isinstance(headers, Mapping)
            else {}
        )
        self.body = body
        self._guard = _guard_for(authenticator, config)

    def get_app_uuid(self) -> str:
        """The app UUID the request claims to come from (whether or not authentic; "" if none)."""
        return Signed.from_headers(self.headers).app_uuid

    def is_authentic(self) -> tuple[bool, int, str]:
        try:
            path, query = split_url(self.url if isinstance(self.url, str) else "")
        except ValueError as exc:
            return False, 401, f"the request URL could not be read: {exc}"
        if not isinstance(self.method, str) or not isinstance(
            self.body, (str, bytes, bytearray, type(None))
        ):
            return False, 401, "the request's method must be a string and its body text or bytes"
        outcome = self._guard.check(self.method, path, query, self.headers, self.body)
        return outcome.ok, outcome.status, outcome.message


class LambdaResult(tuple[bool, int, str]):
    """``(authentic, status_code, message)``, as ``LambdaAuthenticator.is_authentic()``
    returns, that also says who called: ``app_uuid`` and ``protocol_version`` (None
    unless authentic)."""

    app_uuid: str | None
    protocol_version: int | None

    def __new__(
        cls,
        authentic: bool,
        status_code: int,
        message: str,
        app_uuid: str | None = None,
        protocol_version: int | None = None,
    ) -> LambdaResult:
        result = super().__new__(cls, (authentic, status_code, message))
        result.app_uuid = app_uuid
        result.protocol_version = protocol_version
        return result

    @property
    def authentic(self) -> bool:
        return self[0]

    @property
    def status_code(self) -> int:
        return self[1]

    @property
    def message(self) -> str:
        return self[2]


class EventRequest(NamedTuple):
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def _mapping(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``event[name]`` when it is a JSON object; absent, null or anything else is empty
    (a malformed event must fail authentication, not raise: issue 10 item 9)."""
    value = event.get(name)
    return value if isinstance(value, Mapping) else {}


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, values in _mapping(event, "multiValueHeaders").items():
        if isinstance(values, list) and values and isinstance(values[0], str):
            headers[str(name)] = values[0]
    for name, value in _mapping(event, "headers").items():
        if isinstance(value, str):
            headers.setdefault(str(name), value)
    return headers


def _query_from_params(event: Mapping[str, Any], encoded: bool) -> str:
    """Rebuild a query from (decoded, or for ALB still encoded) parameters. V2 signs the
    decoded pairs, so any consistent encoding gives the same string to sign."""
    multi = _mapping(event, "multiValueQueryStringParameters")
    if not multi:
        multi = {k: [v] for k, v in _mapping(event, "queryStringParameters").items()}
    parts = []
    for key, values in multi.items():
        if not isinstance(values, list):
            raise ValueError("the event's query parameters are not lists of strings")
        for value in values or [""]:
            k, v = (
                (str(key), str(value))
                if encoded
                else (quote(str(key), safe=""), quote(str(value), safe=""))
            )
            parts.append(f"{k}={v}")
    return "&".join(parts)


def request_from_event(event: Mapping[str, Any]) -> EventRequest:
    """The request an API Gateway (REST or HTTP API) or ALB event describes.

    The path is the one the client sent and signed: with a stage prefix for REST
    APIs called on their execute-api URL (``requestContext.path``), ``rawPath`` for
    HTTP APIs. Raises ValueError for an event that describes no HTTP request.
    """
    if not isinstance(event, Mapping):
        raise ValueError("the event is not a JSON object")
    context = _mapping(event, "requestContext")
    if event.get("version") == "2.0":
        method = _mapping(context, "http").get("method")
        path = event.get("rawPath") or "/"
        query = event.get("rawQueryString") or ""
    elif "httpMethod" in event:
        method = event["httpMethod"]
        is_alb = "elb" in context
        path = (None if is_alb else context.get("path")) or event.get("path") or "/"
        query = _query_from_params(event, encoded=is_alb)
    else:
        raise ValueError("the event is not from API Gateway or an ALB (no HTTP method)")
    if not isinstance(method, str) or not method:
        raise ValueError("the event has no HTTP method")
    if not isinstance(path, str) or not isinstance(query, str):
        raise ValueError("the event's path or query is not a string")
    raw_body = event.get("body") or ""
    if not isinstance(raw_body, str):
        raise ValueError("the event's body is not a string")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ValueError("the event's body is marked base64 but is not base64") from None
    else:
        try:
            body = raw_body.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the event's body holds a lone surrogate") from None
    return EventRequest(method, path, query, _headers(event), body)


def authenticate_event(
    event: Mapping[str, Any],
    *,
    authenticator: Authenticator | None = None,
    config: Config | None = None,
) -> LambdaResult:
    """Authenticate the request of a Lambda proxy event; never raises for a bad event."""
    try:
        req = request_from_event(event)
    except ValueError as exc:
        return LambdaResult(False, 401, str(exc), None, None)
    outcome = _guard_for(authenticator, config).check(
        req.method, req.path, req.query, req.headers, req.body
    )
    result = outcome.result
    return LambdaResult(
        outcome.ok,
        outcome.status,
        outcome.message,
        result.app_uuid if result else None,
        result.protocol_version if result else None,
    )
