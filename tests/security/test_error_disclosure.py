"""Issue 10 item 11: error bodies never name the MAuth service's URL, and neither
they nor log lines carry its credentials (even a password holding "@")."""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from mauth_client.config import Config, redact_url
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import generate_identity

from ..servers import werkzeug_server


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:p@ss@mauth.example/x", "https://***@mauth.example/x"),
        ("https://user:a@b@c@mauth.example", "https://***@mauth.example"),
        ("https://user:plain@mauth.example?q=a@b", "https://***@mauth.example?q=a@b"),
        ("https://mauth.example/users/a@b", "https://mauth.example/users/a@b"),
        ("https://mauth.example", "https://mauth.example"),
    ],
)
def test_redact_url_cuts_the_whole_user_information(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ok_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [])  # type: ignore[operator]
    return [b"ok"]


@pytest.mark.parametrize("password", ["s3cr@tpass", "s3crXtpass"])
def test_unreachable_service_error_names_neither_url_nor_credentials(
    password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mauth_client")
    me, caller = generate_identity(), generate_identity()
    port = _dead_port()
    config = Config(
        app_uuid=me.app_uuid,
        private_key=me.private_key,
        mauth_url=f"http://svcuser:{password}@127.0.0.1:{port}",
        retries=0,
        connect_timeout=1.0,
    )
    with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=config)) as base:
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/x")
        )
        answer = requests.get(f"{base}/x", headers=headers, timeout=20)
    assert answer.status_code == 500
    body = answer.text
    assert answer.json()["errors"]["mauth"]
    for secret in ("s3cr", "tpass", "svcuser", f":{port}", "http://"):
        assert secret not in body, (secret, body)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the failure is logged ...
    assert "s3cr" not in logged and "tpass" not in logged  # ... without the password
