"""requests and httpx adapters: configuration, bodies, response authentication."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, jsonify, request

from mauth_client.exceptions import ConfigurationError, InauthenticError
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.requests_mauth import MAuth
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import werkzeug_server


@pytest.fixture
def url(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    app = Flask("clients")
    FlaskAuthenticator(app, config=service.config_for(me), sign_responses=True)

    @app.route("/echo", methods=["GET", "POST", "PUT"])
    @requires_authentication
    def echo() -> Any:
        return jsonify(body_len=len(request.get_data()), body_tail=request.get_data()[-4:].hex())

    @app.route("/plain")
    def plain() -> Any:
        return "unsigned"

    with werkzeug_server(app) as base:
        yield base


def test_env_configuration(monkeypatch: pytest.MonkeyPatch, caller: AppIdentity) -> None:
    monkeypatch.setenv("APP_UUID", caller.app_uuid)
    monkeypatch.setenv("MAUTH_PRIVATE_KEY", caller.private_key.replace("\n", "\\n"))
    monkeypatch.delenv("MAUTH_SIGN_VERSIONS", raising=False)
    assert MAuth().signer.sign_versions == ("v1",)  # upstream's default
    monkeypatch.setenv("MAUTH_SIGN_VERSIONS", "v1,v2")
    assert MAuthHttpx().signer.sign_versions == ("v1", "v2")
    assert MAuth(sign_versions="v2").signer.sign_versions == ("v2",)


def test_missing_configuration_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "APP_UUID",
        "MAUTH_APP_UUID",
        "PRIVATE_KEY",
        "MAUTH_PRIVATE_KEY",
        "MAUTH_PRIVATE_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        ConfigurationError, match=r"set APP_UUID \(or MAUTH_APP_UUID\) and MAUTH_PRIVATE_KEY"
    ):
        MAuth()
    with pytest.raises(ConfigurationError, match="MAUTH_PRIVATE_KEY"):
        MAuthHttpx(app_uuid="x")


def test_requests_file_body_is_streamed_not_buffered(
    url: str, caller: AppIdentity, tmp_path: Path
) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"\x01\x02" * 200_000)
    with path.open("rb") as stream:
        answer = requests.put(
            f"{url}/echo",
            data=stream,
            auth=MAuth(caller.app_uuid, caller.private_key, "v1,v2"),
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"body_len": 400_000, "body_tail": "01020102"}


def test_requests_make_headers_upstream_api(caller: AppIdentity) -> None:
    prepared = requests.Request("GET", "https://h.example/x?y=1").prepare()
    headers = MAuth(caller.app_uuid, caller.private_key, "v2").make_headers(prepared)
    assert set(headers) == {"MCC-Authentication", "MCC-Time"}


@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_httpx_sync_response_authentication(
    service: LocalMAuthService, url: str, me: AppIdentity, caller: AppIdentity, versions: str
) -> None:
    auth = MAuthHttpx(
        caller.app_uuid,
        caller.private_key,
        versions,
        authenticate_responses=True,
        config=service.config_for(caller),
    )
    with httpx.Client(auth=auth) as client:
        answer = client.post(f"{url}/echo", content=b"abc", timeout=10)
        assert answer.status_code == 200
        assert answer.extensions["mauth_app_uuid"] == me.app_uuid
        assert answer.extensions["mauth_protocol_version"] == int(versions[1])
        with pytest.raises(InauthenticError, match="No mAuth signature"):
            client.get(f"{url}/plain", timeout=10)


def test_httpx_async_response_authentication(
    service: LocalMAuthService, url: str, me: AppIdentity, caller: AppIdentity
) -> None:
    auth = MAuthHttpx(
        caller.app_uuid,
        caller.private_key,
        "v2",
        authenticate_responses=True,
        config=service.config_for(caller),
    )

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(auth=auth) as client:
            return await client.get(f"{url}/echo", timeout=10)

    answer = asyncio.run(run())
    assert answer.extensions["mauth_app_uuid"] == me.app_uuid


def test_requests_response_authentication_detects_tampering(
    service: LocalMAuthService, url: str, caller: AppIdentity
) -> None:
    checker_auth = MAuth(
        caller.app_uuid,
        caller.private_key,
        "v2",
        authenticate_responses=True,
        config=service.config_for(caller),
    )
    good = requests.get(f"{url}/echo", auth=checker_auth, timeout=10)
    assert good.status_code == 200
    # Replay the good response's signature over a different body: must be refused.
    assert checker_auth._checker is not None
    with pytest.raises(InauthenticError, match="Signature verification failed"):
        checker_auth._checker.check(good.status_code, good.content + b" ", good.headers)


def test_spool_keeps_file_position(caller: AppIdentity) -> None:
    stream = io.BytesIO(b"skip|data")
    stream.seek(5)
    prepared = requests.Request("PUT", "https://h.example/f", data=stream).prepare()
    MAuth(caller.app_uuid, caller.private_key, "v2")(prepared)
    assert prepared.body is stream and stream.tell() == 5


def test_async_response_check_does_not_block_the_event_loop(
    me: AppIdentity, caller: AppIdentity
) -> None:
    with LocalMAuthService(latency=0.6) as slow:
        slow.add_app(me.app_uuid, me.public_key)
        slow.add_app(caller.app_uuid, caller.public_key)
        app = Flask("slow-keys")
        FlaskAuthenticator(app, config=slow.config_for(me), sign_responses=True)

        @app.get("/echo")
        @requires_authentication
        def echo() -> Any:
            return jsonify(ok=True)

        auth = MAuthHttpx(
            caller.app_uuid,
            caller.private_key,
            "v2",
            authenticate_responses=True,
            config=slow.config_for(caller),
        )
        ticks: list[float] = []
        spans: list[float] = []

        async def ticker(stop: asyncio.Event) -> None:
            while not stop.is_set():
                ticks.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0.02)

        async def run(url: str) -> httpx.Response:
            stop = asyncio.Event()
            task = asyncio.create_task(ticker(stop))
            began = asyncio.get_running_loop().time()
            async with httpx.AsyncClient(auth=auth) as client:
                answer = await client.get(f"{url}/echo", timeout=20)
            spans.append(asyncio.get_running_loop().time() - began)
            stop.set()
            await task
            return answer

        with werkzeug_server(app) as url:
            answer = asyncio.run(run(url))
    assert answer.extensions["mauth_app_uuid"] == me.app_uuid
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    # Both key fetches (the server's, then the client's for the response) take over
    # 0.6 s each; a blocked loop would show one gap that long. The ticker's first and
    # last ticks may each fall up to one 0.02 s sleep inside the call.
    assert spans[0] > 1.2, spans
    assert ticks[-1] - ticks[0] > spans[0] - 0.1
    assert max(gaps) < 0.4, max(gaps)
