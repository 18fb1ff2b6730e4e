"""The local MAuth service: a WSGI app and a threaded server on 127.0.0.1."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..authenticator import Authenticator
from ..config import Config
from ..consts import MWSV2_TOKEN
from ..exceptions import InauthenticError, KeyFormatError, MAuthError
from ..keys import load_public_key, public_key_pem
from ..signable import RequestSignable
from ..signed import Signed
from ..wsgi_target import request_target, signed_from_environ

StartResponse = Callable[..., Any]
_SAFE_FILE_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ROUTE = re.compile(
    r"/mauth/(v[0-9]+)/(security_tokens/(?P<uuid>[^/]+)\.json|authentication_tickets\.json)"
)


@dataclass(frozen=True)
class AppIdentity:
    """An app registered with the service: its UUID and key pair (PEM)."""

    app_uuid: str
    private_key: str = field(repr=False)
    public_key: str


def generate_identity(app_uuid: str | None = None, bits: int = 2048) -> AppIdentity:
    """A new app UUID (unless given) with a fresh RSA key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    return AppIdentity(app_uuid or str(uuid.uuid4()), private, public_key_pem(key))


class _ServiceKeys:
    """The service's own key store: a dict, plus ``<app_uuid>.pub`` files of a folder."""

    def __init__(self, keys: Mapping[str, str], keys_dir: Path | None) -> None:
        self._keys = dict(keys)
        self._dir = keys_dir
        self._lock = threading.Lock()

    def add(self, app_uuid: str, public_pem: str) -> None:
        load_public_key(public_pem)  # refuse a bad key now, not at lookup time
        with self._lock:
            self._keys[app_uuid.lower()] = public_pem  # UUIDs are case-insensitive

    def pem(self, app_uuid: str) -> str | None:
        with self._lock:
            found = self._keys.get(app_uuid.lower())
            if found is not None:
                return found
        if self._dir is not None and _SAFE_FILE_UUID.fullmatch(app_uuid):
            for name in dict.fromkeys((app_uuid, app_uuid.lower())):
                try:
                    return (self._dir / f"{name}.pub").read_text(encoding="ascii")
                except (OSError, UnicodeDecodeError):
                    continue
        return None

    def get_public_key(self, app_uuid: str) -> rsa.RSAPublicKey:  # a KeySource
        pem = self.pem(app_uuid)
        if pem is None:
            raise InauthenticError(f"app {app_uuid!r} is not registered with this service")
        return load_public_key(pem)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ["RAW_URI"] = self.path  # the target as sent, before any decoding
        return environ


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _start_server(
    app: Callable[..., Any], host: str, port: int
) -> tuple[_ThreadingServer, threading.Thread]:
    server = make_server(
        host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread


@contextmanager
def serve_wsgi(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve any WSGI app on ``host`` (a free port by default) in a thread; yields its URL.

    The server passes ``RAW_URI`` (the request target as sent), as gunicorn does.
    """
    server, _ = _start_server(app, host, port)
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class LocalMAuthService:
    """A MAuth service for tests and development; see the package docstring."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        *,
        keys_dir: str | Path | None = None,
        max_age: int | None = 300,
        latency: float = 0.0,
        fail_status: int | None = None,
        authenticate_callers: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = _ServiceKeys(keys or {}, Path(keys_dir) if keys_dir is not None else None)
        self.max_age = max_age
        self.latency = latency
        self.fail_status = fail_status
        self.authenticate_callers = authenticate_callers
        self.host = host
        self.port = port
        self._authenticator = Authenticator(self.keys, clock=clock)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    # --- registry ---------------------------------------------------------------------

    def add_app(self, app_uuid: str, public_key_pem: str) -> None:
        """Register an app's public key."""
        self.keys.add(app_uuid, public_key_pem)

    def new_app(self, app_uuid: str | None = None) -> AppIdentity:
        """Generate a key pair, register it, and return the identity."""
        identity = generate_identity(app_uuid)
        self.add_app(identity.app_uuid, identity.public_key)
        return identity

    def rotate_key(self, app: AppIdentity | str) -> AppIdentity:
        """Give ``app`` a new key pair (as an app owner rotating its key would) and
        return its new identity; the service answers with the new public key from now on."""
        app_uuid = app if isinstance(app, str) else app.app_uuid
        identity = generate_identity(app_uuid)
        self.add_app(identity.app_uuid, identity.public_key)
        return identity

    def config_for(self, identity: AppIdentity, **overrides: Any) -> Config:
        """A :class:`Config` for ``identity`` that uses this service."""
        values: dict[str, Any] = {
            "app_uuid": identity.app_uuid,
            "private_key": identity.private_key,
            "mauth_url": self.url,
            "sign_versions": "v1,v2",
        }
        values.update(overrides)
        return Config(**values)

    # --- counters ---------------------------------------------------------------------

    def calls(self, kind: str = "all", app_uuid: str | None = None) -> int:
        """How many calls were answered: ``kind`` is ``"security_tokens"``,
        ``"authentication_tickets"`` or ``"all"``; ``app_uuid`` narrows key lookups."""
        name = kind if app_uuid is None else f"{kind}:{app_uuid}"
        with self._counts_lock:
            return self._counts[name]

    def reset_counters(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def _count(self, *names: str) -> None:
        with self._counts_lock:
            for name in names:
                self._counts[name] += 1

    # --- serving ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local MAuth service is not running; call start()")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> LocalMAuthService:
        if self._server is None:
            self._server, self._thread = _start_server(self, self.host, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalMAuthService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the WSGI app -----------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, headers, body = self._answer(environ)
        start_response(
            status,
            [("Content-Type", "application/json"), *headers, ("Content-Length", str(len(body)))],
        )
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        self._count("all")
        if self.latency:
            time.sleep(self.latency)
        if self.fail_status is not None:
            return _json(self.fail_status, {"errors": {"mauth": ["forced failure"]}})
        path, query = request_target(environ)
        route = _ROUTE.fullmatch(path)
        if route is None:
            return _json(404, {"errors": {"mauth": ["no such endpoint"]}})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(400, {"errors": {"mauth": ["bad Content-Length"]}})
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        method = environ.get("REQUEST_METHOD", "GET")
        if self.authenticate_callers:
            signable = RequestSignable(method=method, path=path, query_string=query, body=body)
            try:
                self._authenticator.authenticate(signable, signed_from_environ(environ))
            except MAuthError as exc:
                return _json(401, {"errors": {"mauth": [str(exc)]}})
        if route.group("uuid") is not None:
            if method != "GET":
                return _json(405, {"errors": {"mauth": ["use GET"]}})
            return self._security_token(unquote(route.group("uuid")))
        if method != "POST":
            return _json(405, {"errors": {"mauth": ["use POST"]}})
        return self._ticket(body)

    def _security_token(self, app_uuid: str) -> tuple[str, list[tuple[str, str]], bytes]:
        self._count("security_tokens", f"security_tokens:{app_uuid}")
        pem = self.keys.pem(app_uuid)
        if pem is None:
            return _json(404, {"errors": {"mauth": [f"app {app_uuid} is not registered"]}})
        headers = []
        if self.max_age is not None:
            headers.append(("Cache-Control", f"max-age={self.max_age}"))
        status, base, body = _json(
            200,
            {
                "security_token": {
                    "app_uuid": app_uuid,
                    "public_key_str": pem,
                    "created_at": "2026-01-01T00:00:00Z",
                }
            },
        )
        return status, base + headers, body

    def _ticket(self, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        self._count("authentication_tickets")
        try:
            ticket = json.loads(body)["authentication_ticket"]
            app_uuid = str(ticket["app_uuid"])
            signature = str(ticket["client_signature"])
            when = str(ticket["request_time"])
            token = str(ticket.get("token") or "MWS")
            request_body = base64.b64decode(ticket.get("b64encoded_body") or "", validate=True)
            signable = RequestSignable(
                method=str(ticket["verb"]),
                path=str(ticket["request_url"]),
                query_string=str(ticket.get("query_string") or ""),
                body=request_body,
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _json(400, {"errors": {"mauth": ["malformed authentication ticket"]}})
        if token == MWSV2_TOKEN:
            signed = Signed(mcc_authentication=f"MWSV2 {app_uuid}:{signature};", mcc_time=when)
        else:
            signed = Signed(x_mws_authentication=f"{token} {app_uuid}:{signature}", x_mws_time=when)
        try:
            self._authenticator.authenticate(signable, signed)
        except (InauthenticError, KeyFormatError) as exc:
            return _json(412, {"errors": {"mauth": [str(exc)]}})
        return "204 No Content", [], b""


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _json(status: int, document: object) -> tuple[str, list[tuple[str, str]], bytes]:
    return f"{status} {_REASONS.get(status, 'Status')}", [], json.dumps(document).encode()
