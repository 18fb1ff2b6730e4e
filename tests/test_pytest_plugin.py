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


def test_mauth_redis_fixture_gives_a_real_redis_for_replay_protection(
    mauth_redis: Any, mauth_config: Config, mauth_session: Any
) -> None:
    import redis

    from mauth_client.middlewares import MAuthWSGIMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    assert mauth_redis.url.startswith("redis://127.0.0.1:")
    assert redis.Redis.from_url(mauth_redis.url).ping() is True
    config = mauth_config.with_overrides(replay_cache=mauth_redis.url)
    with serve(MAuthWSGIMiddleware(app, config=config)) as url:
        assert mauth_session.post(f"{url}/x", data=b"1").status_code == 200
        mauth_redis.stop()
        assert mauth_session.post(f"{url}/x", data=b"2").status_code == 503
        mauth_redis.start()
        assert mauth_session.post(f"{url}/x", data=b"3").status_code == 200
