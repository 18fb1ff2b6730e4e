"""The pytest plugin's fixtures, used the way a project testing its own app would."""

from __future__ import annotations

import json
from typing import Any

import requests

from mauth_client.authenticator import Authenticator
from mauth_client.config import Config
from mauth_client.signable import RequestSignable
from mauth_client.testing import AppIdentity, LocalMAuthService
from mauth_client.wsgi_target import request_target, signed_from_environ

from .test_key_source import serve


def test_fixtures_sign_and_authenticate_over_http(
    mauth_service: LocalMAuthService,
    mauth_app: AppIdentity,
    mauth_config: Config,
    mauth_caller: AppIdentity,
    mauth_session: Any,
) -> None:
    authenticator = Authenticator.from_config(mauth_config)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path, query = request_target(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        signable = RequestSignable(
            method=environ["REQUEST_METHOD"], path=path, query_string=query, body=body
        )
        ok, status, message = authenticator.is_authentic(signable, signed_from_environ(environ))
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [json.dumps({"ok": ok, "message": message}).encode()]

    assert mauth_config.app_uuid == mauth_app.app_uuid
    assert mauth_config.mauth_url == mauth_service.url
    with serve(app) as url:
        good = mauth_session.post(
            f"{url}/caf%C3%A9/items?q=a+b&z=%2F", data=b"\x00binary\xff", timeout=10
        )
        assert good.status_code == 200, good.text
        unsigned = requests.post(f"{url}/x", data=b"x", timeout=10)
        assert unsigned.status_code == 401
    assert mauth_service.calls("security_tokens", mauth_caller.app_uuid) == 1
