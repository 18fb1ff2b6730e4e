"""Issue 10 items 6 and 7: clients do not forward signatures across origins, and can pin
who signs the responses they accept.

Two real servers on different ports of 127.0.0.1: origin A verifies MAuth signatures
(with the caller's public key) and redirects; origin B records everything it receives.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import requests
from flask import Flask

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import InauthenticError, MAuthError
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.key_source import StaticKeySource
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity
from mauth_client.wsgi_target import request_target, signed_from_environ

from ..servers import werkzeug_server
from ._servers import Recorder

StartResponse = Callable[..., Any]
REDIRECTS = [301, 302, 303, 307, 308]


def mauth_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith(("x-mws-", "mcc-"))}


class OriginA:
    """Redirects ``/start`` to ``?to=`` with ``?code=``; elsewhere checks the signature."""

    def __init__(self, caller: AppIdentity) -> None:
        self.authenticator = Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
        self.verdicts: list[tuple[str, str, bytes, str]] = []
        self.mauth_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        path, query = request_target(environ)
        params = dict(unquote(part).split("=", 1) for part in query.split("&") if "=" in part)
        if path == "/start":
            self.mauth_seen.append(
                mauth_headers(
                    {
                        k[5:].replace("_", "-"): v
                        for k, v in environ.items()
                        if k.startswith("HTTP_")
                    }
                )
            )
            code = int(params.get("code", "302"))
            start_response(
                f"{code} Redirect", [("Location", params["to"]), ("Content-Length", "0")]
            )
            return []
        method = environ["REQUEST_METHOD"]
        try:
            signable = RequestSignable(method=method, path=path, query_string=query, body=body)
            result = self.authenticator.authenticate(signable, signed_from_environ(environ))
            verdict = f"authentic:{result.protocol_version}"
        except MAuthError as exc:
            verdict = f"refused:{type(exc).__name__}"
        with self._lock:
            self.verdicts.append((method, path, body, verdict))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


@pytest.fixture
def servers() -> Iterator[tuple[AppIdentity, OriginA, str, Recorder, str]]:
    caller = generate_identity()
    origin_a = OriginA(caller)
    recorder = Recorder()
    with werkzeug_server(origin_a) as url_a, werkzeug_server(recorder) as url_b:
        yield caller, origin_a, url_a, recorder, url_b


def start_url(url_a: str, code: int, target: str) -> str:
    return f"{url_a}/start?code={code}&to={target}"


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", REDIRECTS)
def test_requests_strips_signature_on_cross_origin_redirect(servers: Any, code: int) -> None:
    caller, _, url_a, recorder, url_b = servers
    auth = MAuth(caller.app_uuid, caller.private_key, "v1,v2")
    answer = requests.post(
        start_url(url_a, code, f"{url_b}/steal"), data=b"secret", auth=auth, timeout=10
    )
    assert answer.status_code == 200 and answer.text == "seen"
    assert len(recorder.seen) == 1
    assert mauth_headers(recorder.seen[0]["headers"]) == {}
    assert recorder.seen[0]["path"] == "/steal"


@pytest.mark.parametrize(
    ("code", "method", "body"),
    [
        (301, "GET", b""),
        (302, "GET", b""),
        (303, "GET", b""),
        (307, "POST", b"payload"),
        (308, "POST", b"payload"),
    ],
)
def test_requests_signs_same_origin_redirect_afresh(
    servers: Any, code: int, method: str, body: bytes
) -> None:
    caller, origin_a, url_a, _, _ = servers
    auth = MAuth(caller.app_uuid, caller.private_key, "v2")
    answer = requests.post(
        start_url(url_a, code, "/target?x=1"), data=b"payload", auth=auth, timeout=10
    )
    assert answer.status_code == 200
    assert origin_a.verdicts == [(method, "/target", body, "authentic:2")]


def test_requests_file_body_resigned_on_307(servers: Any) -> None:
    caller, origin_a, url_a, _, _ = servers
    with requests.Session() as session:
        session.auth = MAuth(caller.app_uuid, caller.private_key, "v1,v2")
        answer = session.put(
            start_url(url_a, 307, "/target"), data=io.BytesIO(b"file body" * 1000), timeout=10
        )
    assert answer.status_code == 200
    assert origin_a.verdicts == [("PUT", "/target", b"file body" * 1000, "authentic:2")]


def test_requests_generator_body_resigned_on_307(servers: Any) -> None:
    """A generator body is spooled (here to a file: 2 MiB) and sent again after a 307."""
    caller, origin_a, url_a, _, _ = servers
    chunks = [bytes([i]) * 65536 for i in range(32)]
    auth = MAuth(caller.app_uuid, caller.private_key, "v2")
    answer = requests.post(
        start_url(url_a, 307, "/target"), data=iter(chunks), auth=auth, timeout=10
    )
    assert answer.status_code == 200
    assert origin_a.verdicts == [("POST", "/target", b"".join(chunks), "authentic:2")]


def test_requests_back_and_forth_between_origins(servers: Any) -> None:
    """A -> B -> A: B gets no signature; back at A the request is signed afresh."""
    caller, origin_a, url_a, _, _ = servers
    origin_b = OriginA(caller)  # B redirects too, and notes any MAuth header it gets
    auth = MAuth(caller.app_uuid, caller.private_key, "v2")
    with werkzeug_server(origin_b) as url_b:
        back = f"{url_b}/start?code=307%26to={url_a}/target"
        answer = requests.post(
            f"{url_a}/start?code=307&to={back}", data=b"payload", auth=auth, timeout=10
        )
    assert answer.status_code == 200
    assert origin_b.mauth_seen == [{}]
    assert origin_a.verdicts == [("POST", "/target", b"payload", "authentic:2")]


def test_requests_without_following_keeps_the_redirect(servers: Any) -> None:
    caller, _, url_a, recorder, url_b = servers
    auth = MAuth(caller.app_uuid, caller.private_key, "v2")
    answer = requests.post(
        start_url(url_a, 307, f"{url_b}/x"), data=b"b", auth=auth, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 307
    assert recorder.seen == []


# --- httpx ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", REDIRECTS)
def test_httpx_strips_signature_on_cross_origin_redirect(servers: Any, code: int) -> None:
    caller, _, url_a, recorder, url_b = servers
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")
    with auth.client(follow_redirects=True, timeout=10) as client:
        answer = client.post(start_url(url_a, code, f"{url_b}/steal"), content=b"secret")
    assert answer.status_code == 200 and answer.text == "seen"
    assert len(recorder.seen) == 1
    assert mauth_headers(recorder.seen[0]["headers"]) == {}


@pytest.mark.parametrize(
    ("code", "method", "body"),
    [
        (301, "GET", b""),
        (302, "GET", b""),
        (303, "GET", b""),
        (307, "POST", b"payload"),
        (308, "POST", b"payload"),
    ],
)
def test_httpx_signs_same_origin_redirect_afresh(
    servers: Any, code: int, method: str, body: bytes
) -> None:
    caller, origin_a, url_a, _, _ = servers
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with auth.client(follow_redirects=True, timeout=10) as client:
        answer = client.post(start_url(url_a, code, "/target?x=1"), content=b"payload")
    assert answer.status_code == 200
    assert origin_a.verdicts == [(method, "/target", body, "authentic:2")]


@pytest.mark.parametrize("code", [302, 307])
def test_httpx_async_client_strips_and_resigns(servers: Any, code: int) -> None:
    caller, origin_a, url_a, recorder, url_b = servers
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")

    async def go() -> None:
        async with auth.async_client(follow_redirects=True, timeout=10) as client:
            away = await client.post(start_url(url_a, code, f"{url_b}/steal"), content=b"s")
            home = await client.post(start_url(url_a, code, "/target"), content=b"payload")
        assert away.status_code == home.status_code == 200

    asyncio.run(go())
    assert mauth_headers(recorder.seen[0]["headers"]) == {}
    method, body = ("GET", b"") if code == 302 else ("POST", b"payload")
    assert origin_a.verdicts == [(method, "/target", body, "authentic:2")]


def test_httpx_user_hooks_are_kept(servers: Any) -> None:
    caller, _, url_a, recorder, url_b = servers
    seen: list[str] = []
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    hooks = {"request": [lambda request: seen.append(str(request.url))]}
    with auth.client(follow_redirects=True, timeout=10, event_hooks=hooks) as client:
        client.post(start_url(url_a, 307, f"{url_b}/steal"), content=b"s")
    assert len(seen) == 2
    assert mauth_headers(recorder.seen[0]["headers"]) == {}


def test_httpx_plain_client_following_redirects_is_warned_about(
    servers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain ``httpx.Client(auth=...)`` follows redirects before any auth code runs again:
    the hook cannot be installed from the auth, so the leak is at least reported."""
    caller, _, url_a, _, url_b = servers
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with (
        caplog.at_level(logging.WARNING, logger="mauth_client"),
        httpx.Client(auth=auth, follow_redirects=True, timeout=10) as client,
    ):
        for _ in range(2):
            client.post(start_url(url_a, 302, f"{url_b}/x"), content=b"s")
    assert [r.getMessage() for r in caplog.records].count(
        "httpx followed a redirect carrying the MAuth headers of the first request, to "
        "whatever origin it named: build the client with MAuthHttpx.client() or "
        "event_hooks=auth.event_hooks"
    ) == 1


# --- Pinning the response signer (item 7) ----------------------------------------------------


@pytest.fixture
def signing_servers() -> Iterator[tuple[LocalMAuthService, AppIdentity, AppIdentity, str, str]]:
    """Two MAuth-protected servers that sign their responses: ``me`` and ``evil`` (another
    app registered with the same MAuth service)."""
    with LocalMAuthService() as service:
        me, evil, caller = service.new_app(), service.new_app(), service.new_app()
        apps = []
        for identity in (me, evil):
            app = Flask(f"signs-as-{identity.app_uuid}")
            FlaskAuthenticator(app, config=service.config_for(identity), sign_responses=True)

            @app.route("/balance")
            @requires_authentication
            def balance() -> str:
                return "100"

            apps.append(app)
        with werkzeug_server(apps[0]) as url_me, werkzeug_server(apps[1]) as url_evil:
            yield service, me, caller, url_me, url_evil


def test_requests_response_from_unexpected_signer_is_refused(signing_servers: Any) -> None:
    service, me, caller, url_me, url_evil = signing_servers
    config = service.config_for(caller)
    # Without pinning, evil's signed response passes: any registered app is "authentic".
    loose = MAuth(config=config, authenticate_responses=True)
    assert requests.get(f"{url_evil}/balance", auth=loose, timeout=10).mauth_app_uuid != me.app_uuid
    pinned = MAuth(config=config, response_app_uuids=[me.app_uuid.upper()])
    assert requests.get(f"{url_me}/balance", auth=pinned, timeout=10).mauth_app_uuid == me.app_uuid
    with pytest.raises(InauthenticError, match="not one of the expected signers"):
        requests.get(f"{url_evil}/balance", auth=pinned, timeout=10)


def test_httpx_response_from_unexpected_signer_is_refused(signing_servers: Any) -> None:
    service, me, caller, url_me, url_evil = signing_servers
    pinned = MAuthHttpx(config=service.config_for(caller), response_app_uuids=[me.app_uuid])
    with httpx.Client(auth=pinned, timeout=10) as client:
        good = client.get(f"{url_me}/balance")
        assert good.extensions["mauth_app_uuid"] == me.app_uuid
        with pytest.raises(InauthenticError, match="not one of the expected signers"):
            client.get(f"{url_evil}/balance")

    async def go() -> None:
        async with httpx.AsyncClient(auth=pinned, timeout=10) as client:
            with pytest.raises(InauthenticError, match="not one of the expected signers"):
                await client.get(f"{url_evil}/balance")

    asyncio.run(go())


def test_empty_response_app_uuids_is_a_configuration_error(caller: AppIdentity) -> None:
    from mauth_client.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="response_app_uuids"):
        MAuth(caller.app_uuid, caller.private_key, response_app_uuids=[])
