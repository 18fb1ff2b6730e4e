"""MAuth for Flask: an extension and the ``requires_authentication`` decorator.

    mauth = FlaskAuthenticator(app)          # or FlaskAuthenticator() + mauth.init_app(app)

    @app.get("/orders")
    @requires_authentication                  # or @requires_authentication(app_uuids={...})
    def orders(): ...

Only decorated views are authenticated, so a health check such as ``/app_status``
stays open by simply not decorating it. ``FlaskAuthenticator(app,
authenticate_all=True, exempt={"/app_status"})`` authenticates every route instead,
except the exempt ones.

Settings come from ``app.config`` (``MAUTH_APP_UUID``, ``MAUTH_PRIVATE_KEY``,
``MAUTH_URL``, ``MAUTH_MODE``, ... the environment names of the README, plus
``MAUTH_APP_UUIDS`` for an allow-list and ``MAUTH_SIGN_RESPONSES``), falling back to
the environment. The caller's app UUID is in ``flask.g.mauth_app_uuid`` and in
``request.environ["mauth.app_uuid"]``. The request body is read with
``request.get_data(cache=True)``, so the view can still read it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import threading
from collections.abc import Callable, Collection
from typing import Any, TypeVar, overload

from ._optional import missing_extra

try:
    from flask import Flask, Response, current_app, g, request
except ImportError as exc:  # the flask extra is not installed
    raise missing_extra(__name__, "flask", exc) from exc
from werkzeug.exceptions import RequestEntityTooLarge

from .authenticator import Authenticator
from .body import BodyTooLargeError
from .config import ENV_NAMES, Config, require_configured
from .consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PROTOCOL_VERSION
from .exceptions import BodyReadError, MAuthError
from .middlewares.wsgi import read_wsgi_body
from .server import JSON_CONTENT_TYPE, Outcome, RequestGuard, error_body, is_exempt
from .wsgi_target import request_target, signed_from_environ

logger = logging.getLogger("mauth_client")

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "mauth"


def config_from_flask(app: Flask, *, resolve_private_key: bool = True) -> Config:
    """A :class:`Config` from ``app.config``'s MAuth keys, over the environment."""
    merged = dict(os.environ)
    for name in ENV_NAMES:
        value = app.config.get(name)
        if value is not None:
            merged[name] = str(value)
    return Config.from_env(merged, resolve_private_key=resolve_private_key)


class FlaskAuthenticator:
    """The Flask extension; state lives in ``app.extensions["mauth"]``."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: Config | None = None,
        authenticator: Authenticator | None = None,
        app_uuids: Collection[str] | None = None,
        sign_responses: bool | None = None,
        authenticate_all: bool = False,
        exempt: Collection[str] = (),
        max_body_size: int | None = None,
    ) -> None:
        self._max_body_size = max_body_size
        self._config = config
        self._authenticator = authenticator
        self._app_uuids = app_uuids
        self._sign_responses = sign_responses
        self.authenticate_all = authenticate_all
        self.exempt = frozenset(exempt)
        self.guard: RequestGuard | None = None
        self.sign_responses = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        self._configure(app)
        if self.authenticate_all:
            # Decorated views sign their own responses; these hooks serve every route.
            app.before_request(self._authenticate_every_request)
            app.after_request(self._sign_every_response)

    def _configure(self, app: Flask, *, require: bool = True) -> None:
        """Settings and state only, no hooks: safe even while the app serves requests.

        ``require=False`` (the decorator's lazy default, built while serving) leaves a
        missing configuration to be answered with a JSON 500 instead of raising."""
        # Only presence is checked now (no authenticator given: fail at start-up, naming
        # what to set); a KMS-encrypted key is decrypted when first needed.
        config = self._config or config_from_flask(app, resolve_private_key=False)
        if self._authenticator is None and require:
            require_configured(config, type(self).__name__)
        app_uuids = self._app_uuids
        if app_uuids is None and app.config.get("MAUTH_APP_UUIDS") is not None:
            app_uuids = set(app.config["MAUTH_APP_UUIDS"])
        self.guard = RequestGuard(
            self._authenticator,
            config=config,
            app_uuids=app_uuids,
            max_body_size=self._max_body_size,
        )
        sign = self._sign_responses
        self.sign_responses = bool(
            app.config.get("MAUTH_SIGN_RESPONSES", False) if sign is None else sign
        )
        if self.sign_responses:
            self.guard.signer  # noqa: B018 - fail at start-up, not on the first response
        app.extensions[EXTENSION] = self

    def _authenticate_every_request(self) -> Response | None:
        path, _ = request_target(request.environ)
        if is_exempt(path, self.exempt) or is_exempt(request.path, self.exempt):
            return None
        return authenticate_current_request(self, None, self.sign_responses)

    def _sign_every_response(self, response: Response) -> Response:
        if g.get("mauth_sign_response") and not g.get("mauth_response_signed"):
            return sign_flask_response(self, response)
        return response

    def check(self, app_uuids: Collection[str] | None = None) -> Outcome:
        """Authenticate the current Flask request; its body is read only once every
        check that needs no body has passed (then cached for the view)."""
        guard = self.guard
        assert guard is not None
        path, query = request_target(request.environ)
        signed = signed_from_environ(request.environ)
        pre = guard.precheck(request.method, query, signed, content_length=request.content_length)
        if not pre.go_on:
            return pre
        limit = guard.max_body_size
        environ = request.environ
        try:
            if limit is not None and request.content_length is None:
                # A chunked body: read at most ``limit`` bytes (413 past it), then hand
                # Flask the bytes as a body with a length.
                data = read_wsgi_body(environ, limit, limit)
                environ["wsgi.input"] = io.BytesIO(data)
                environ["CONTENT_LENGTH"] = str(len(data))
                environ.pop("wsgi.input_terminated", None)
            elif limit is not None:
                current = request.max_content_length
                request.max_content_length = limit if current is None else min(limit, current)
            body = request.get_data(cache=True)
        except (RequestEntityTooLarge, BodyTooLargeError):
            return Outcome(413, f"the request body exceeds {limit} bytes", None)
        except BodyReadError as exc:
            return Outcome(401, str(exc), None)
        return guard.check(
            request.method,
            path,
            query,
            signed,
            body,
            app_uuids=app_uuids,
            prechecked=pre.prechecked,
        )


_lazy_lock = threading.Lock()


def _extension() -> FlaskAuthenticator:
    extension = current_app.extensions.get(EXTENSION)
    if isinstance(extension, FlaskAuthenticator):
        return extension
    # Friendly default: the decorator alone works, configured from app.config and the
    # environment. Only settings, no hooks: Flask forbids adding hooks once it serves.
    with _lazy_lock:
        extension = current_app.extensions.get(EXTENSION)
        if not isinstance(extension, FlaskAuthenticator):
            extension = FlaskAuthenticator()
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            extension._configure(app, require=False)
    return extension


def authenticate_current_request(
    extension: FlaskAuthenticator, app_uuids: Collection[str] | None, sign_response: bool
) -> Response | None:
    """None when the request may go on; otherwise the JSON error response to send."""
    g.mauth_sign_response = sign_response
    outcome = extension.check(app_uuids)
    if outcome.result is not None:
        g.mauth_protocol_version = outcome.result.protocol_version
    if not outcome.ok:
        return Response(error_body(outcome.message), outcome.status, mimetype=JSON_CONTENT_TYPE)
    assert outcome.result is not None
    g.mauth_app_uuid = outcome.result.app_uuid
    request.environ[ENV_APP_UUID] = outcome.result.app_uuid
    request.environ[ENV_AUTHENTIC] = True
    request.environ[ENV_PROTOCOL_VERSION] = outcome.result.protocol_version
    return None


def sign_flask_response(extension: FlaskAuthenticator, response: Response) -> Response:
    """Sign ``response`` in the version the request used (V1 and V2 if it was unsigned)."""
    g.mauth_response_signed = True
    if response.is_streamed:
        logger.warning("MAuth: a streamed response cannot be signed; it was sent unsigned")
        return response
    assert extension.guard is not None
    try:
        headers = extension.guard.response_headers(
            response.status_code, response.get_data(), g.get("mauth_protocol_version")
        )
    except MAuthError as exc:  # e.g. no private key for a decorator's sign_response=True
        logger.error("MAuth: the response could not be signed and was sent unsigned: %s", exc)
        return response
    response.headers.update(headers)
    return response


@overload
def requires_authentication(view: F) -> F: ...
@overload
def requires_authentication(
    view: None = None,
    *,
    app_uuids: Collection[str] | None = None,
    sign_response: bool | None = None,
) -> Callable[[F], F]: ...


def requires_authentication(
    view: F | None = None,
    *,
    app_uuids: Collection[str] | None = None,
    sign_response: bool | None = None,
) -> F | Callable[[F], F]:
    """Require an authentic MAuth signature for a view; bare or with options.

    ``app_uuids``: only these callers (others get 403). ``sign_response``: sign the
    response (default: the extension's ``sign_responses``).
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extension = _extension()
            sign = extension.sign_responses if sign_response is None else sign_response
            failure = authenticate_current_request(extension, app_uuids, sign)
            if failure is not None:
                response = failure
            else:
                result = current_app.ensure_sync(function)(*args, **kwargs)
                if not sign:
                    return result
                response = current_app.make_response(result)
            return sign_flask_response(extension, response) if sign else response

        return wrapper  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
