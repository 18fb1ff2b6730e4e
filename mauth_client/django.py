"""MAuth for Django: middleware and the ``mauth_required`` / ``mauth_optional`` decorators.

    MIDDLEWARE = [..., "mauth_client.django.MAuthMiddleware"]   # every request
    @mauth_required                                            # or per view
    @mauth_optional                  # sets request.mauth_app_uuid when authentically signed

Settings come from ``settings.MAUTH`` (a dict with the environment names of the
README, e.g. ``{"MAUTH_URL": ..., "APP_UUID": ...}``, plus ``APP_UUIDS`` for an
allow-list and ``EXEMPT`` for paths the middleware lets through), falling back to
the environment. ``request.mauth_app_uuid`` is the caller's app UUID (or None).
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ._optional import missing_extra

try:
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.http import HttpRequest, HttpResponse
except ImportError as exc:  # the django extra is not installed
    raise missing_extra(__name__, "django", exc) from exc

from .body import BodyTooLargeError
from .config import ENV_NAMES, Config
from .consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PROTOCOL_VERSION
from .exceptions import BodyReadError
from .server import JSON_CONTENT_TYPE, Outcome, RequestGuard, error_body, is_exempt
from .wsgi_target import has_raw_target, quote_path, request_target, signed_from_environ

View = TypeVar("View", bound=Callable[..., Any])
_guard: RequestGuard | None = None
_lock = threading.Lock()


def _settings() -> dict[str, Any]:
    value = getattr(settings, "MAUTH", None)
    return dict(value) if isinstance(value, dict) else {}


def _reset(setting: str = "", **_: Any) -> None:
    global _guard
    if setting in ("", "MAUTH"):
        _guard = None


setting_changed.connect(_reset)


def guard() -> RequestGuard:
    """The process's request guard, built from ``settings.MAUTH`` over the environment."""
    global _guard
    current = _guard
    if current is None:
        with _lock:  # concurrent first requests build one guard, so one key cache
            if _guard is None:
                options = _settings()
                env = dict(os.environ)
                env.update(
                    {k: str(v) for k, v in options.items() if k in ENV_NAMES and v is not None}
                )
                app_uuids = options.get("APP_UUIDS")
                _guard = RequestGuard(
                    config=Config.from_env(env), app_uuids=set(app_uuids) if app_uuids else None
                )
            current = _guard
    return current


def check(request: HttpRequest) -> Outcome:
    """Authenticate a Django request; on success record the caller on the request."""
    if has_raw_target(request.META):
        path, query = request_target(request.META)
    else:
        # Django replaces META["PATH_INFO"] with its UTF-8 decoding: encode that back.
        path = quote_path(request.path.encode("utf-8", "surrogateescape"))
        query = request.META.get("QUERY_STRING", "")
    method = request.method or "GET"
    signed = signed_from_environ(request.META)
    current = guard()
    outcome = current.precheck(method, query, signed, content_length=_declared(request.META))
    if outcome.go_on:  # only now is the body read
        try:
            body = _read_body(request, current.max_body_size)
        except BodyTooLargeError as exc:
            outcome = Outcome(413, str(exc), None)
        except BodyReadError as exc:
            outcome = Outcome(401, str(exc), None)
        else:
            outcome = current.check(
                method, path, query, signed, body, prechecked=outcome.prechecked
            )
    result = outcome.result if outcome.ok else None
    request.mauth_app_uuid = result.app_uuid if result else None
    if result is not None:
        request.META[ENV_APP_UUID] = result.app_uuid
        request.META[ENV_AUTHENTIC] = True
        request.META[ENV_PROTOCOL_VERSION] = result.protocol_version
    return outcome


def _declared(meta: Any) -> int | None:
    raw = meta.get("CONTENT_LENGTH")
    text = raw.strip() if isinstance(raw, str) else ""
    return int(text) if text.isdigit() and text.isascii() and len(text) < 19 else None


def _read_body(request: HttpRequest, limit: int | None) -> bytes:
    """``request.body`` (cached by Django for the view), refusing a body above ``limit``
    as soon as that is known: by its ``Content-Length``, or while reading."""
    if limit is None:
        body: bytes = request.body
        return body
    declared = _declared(request.META)
    if declared is not None and declared > limit:
        raise BodyTooLargeError(limit)
    if declared is None and not hasattr(request, "_body"):
        # No length given: read at most limit + 1 bytes, then hand Django the bytes.
        data = request.read(limit + 1)
        if len(data) > limit:
            raise BodyTooLargeError(limit)
        request._body = data  # what request.body returns from now on
        request._stream = io.BytesIO(data)
    read: bytes = request.body
    return read


def error_response(outcome: Outcome) -> HttpResponse:
    return HttpResponse(
        error_body(outcome.message), status=outcome.status, content_type=JSON_CONTENT_TYPE
    )


class MAuthMiddleware:
    """Authenticates every request except the ``EXEMPT`` paths of ``settings.MAUTH``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        exempt = _settings().get("EXEMPT") or ()
        if exempt and is_exempt(request.path, exempt):
            return self.get_response(request)
        outcome = check(request)
        if not outcome.ok:
            return error_response(outcome)
        return self.get_response(request)


def mauth_required(view: View) -> View:
    """Answer 401 (or 403/500) unless the request carries an authentic MAuth signature."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        outcome = check(request)
        if not outcome.ok:
            return error_response(outcome)
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def mauth_optional(view: View) -> View:
    """Let every request through; ``request.mauth_app_uuid`` is the caller's app UUID
    for an authentic signature and None otherwise (including when the MAuth service
    fails, which is logged as an error)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        check(request)
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
