"""Flask through werkzeug on 127.0.0.1, called with requests + MAuth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, g, jsonify, request

from mauth_client.consts import ENV_APP_UUID
from mauth_client.exceptions import InauthenticError
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.requests_mauth import MAuth
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import werkzeug_server


def make_app(service: LocalMAuthService, me: AppIdentity, **options: Any) -> Flask:
    app = Flask("mauth-test")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid, MAUTH_PRIVATE_KEY=me.private_key, MAUTH_URL=service.url
    )
    FlaskAuthenticator(app, **options)

    @app.route("/app_status")
    def status() -> Any:
        return "OK"

    @app.route("/echo/<path:rest>", methods=["GET", "POST", "PUT", "HEAD", "DELETE"])
    @requires_authentication
    def echo(rest: str) -> Any:
        return jsonify(
            app_uuid=g.mauth_app_uuid,
            environ_app_uuid=request.environ[ENV_APP_UUID],
            version=request.environ["mauth.protocol_version"],
            body_hex=request.get_data().hex(),
            path=request.path,
            args=sorted(request.args.items(multi=True)),
        )

    @app.route("/restricted", methods=["GET"])
    @requires_authentication(app_uuids={"only-this-app"})
    def restricted() -> Any:
        return "secret"

    @app.route("/signed", methods=["GET", "POST"])
    @requires_authentication(sign_response=True)
    def signed() -> Any:
        return jsonify(hello=g.mauth_app_uuid)

    @app.route("/unsigned-response", methods=["GET"])
    @requires_authentication
    def unsigned_response() -> Any:
        return "not signed"

    return app


@pytest.fixture
def url(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    with werkzeug_server(make_app(service, me)) as base:
        yield base


def auth(caller: AppIdentity, versions: str = "v1,v2", **kwargs: Any) -> MAuth:
    return MAuth(caller.app_uuid, caller.private_key, versions, **kwargs)


@pytest.mark.parametrize(("versions", "expected"), [("v1", 1), ("v2", 2), ("v1,v2", 2)])
def test_each_version(url: str, caller: AppIdentity, versions: str, expected: int) -> None:
    answer = requests.post(f"{url}/echo/x", data=b"hello", auth=auth(caller, versions), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["app_uuid"] == answer.json()["environ_app_uuid"] == caller.app_uuid
    assert answer.json()["version"] == expected
    assert answer.json()["body_hex"] == b"hello".hex()  # the view still reads the body


@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_unicode_path_and_query(url: str, caller: AppIdentity, versions: str) -> None:
    answer = requests.get(
        f"{url}/echo/caf\u00e9/%E2%82%AC?q=\u20ac&x=a+b&y=%2F&z=1&z=0",
        auth=auth(caller, versions),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "/echo/caf\u00e9/\u20ac"
    assert answer.json()["args"] == [
        ["q", "\u20ac"],
        ["x", "a b"],
        ["y", "/"],
        ["z", "0"],
        ["z", "1"],
    ]


@pytest.mark.parametrize("body", [bytes(range(256)) * 8, b"", None])
def test_binary_and_empty_bodies(url: str, caller: AppIdentity, body: bytes | None) -> None:
    answer = requests.put(f"{url}/echo/bin", data=body, auth=auth(caller), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_hex"] == (body or b"").hex()


def test_generator_body_is_signed_and_sent(url: str, caller: AppIdentity) -> None:
    chunks = [b"part-1;", b"part-2;", bytes(range(10))]
    answer = requests.post(f"{url}/echo/gen", data=iter(chunks), auth=auth(caller), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_hex"] == b"".join(chunks).hex()


class Tamper(requests.auth.AuthBase):
    """Signs with MAuth, then changes the body: what a man in the middle would do."""

    def __init__(self, inner: MAuth) -> None:
        self.inner = inner

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.inner(request)
        request.body = b"HELLO"
        return request


@pytest.mark.parametrize("versions", ["v1", "v2", "v1,v2"])
def test_tampered_body_is_401(url: str, caller: AppIdentity, versions: str) -> None:
    answer = requests.post(
        f"{url}/echo/x", data=b"hello", auth=Tamper(auth(caller, versions)), timeout=10
    )
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/json"
    assert "Signature verification failed" in answer.json()["errors"]["mauth"][0]


def test_unsigned_is_401_json_and_head_has_no_body(url: str) -> None:
    answer = requests.get(f"{url}/echo/x", timeout=10)
    assert answer.status_code == 401
    assert answer.json() == {
        "errors": {
            "mauth": [
                "Authentication Failed. No mAuth signature present; X-MWS-Authentication "
                "header is blank, MCC-Authentication header is blank."
            ]
        }
    }
    head = requests.head(f"{url}/echo/x", timeout=10)
    assert head.status_code == 401 and head.content == b""


def test_stale_request_is_401(url: str, caller: AppIdentity) -> None:
    from mauth_client.signable import RequestSignable
    from mauth_client.signer import Signer

    headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="GET", url="/echo/x"), {"time": int(time.time()) - 400}
    )
    answer = requests.get(f"{url}/echo/x", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert "Time verification failed" in answer.json()["errors"]["mauth"][0]


def test_garbage_headers_are_401(url: str) -> None:
    for headers in (
        {"MCC-Authentication": "MWSV2 \u00ff:;", "MCC-Time": "x"},
        {"X-MWS-Authentication": "garbage", "X-MWS-Time": "99999999999999999999"},
    ):
        answer = requests.get(
            f"{url}/echo/x",
            headers={k: v.encode("latin-1") for k, v in headers.items()},
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["errors"]["mauth"]


def test_allow_list(url: str, caller: AppIdentity) -> None:
    answer = requests.get(f"{url}/restricted", auth=auth(caller), timeout=10)
    assert answer.status_code == 403
    assert caller.app_uuid in answer.json()["errors"]["mauth"][0]


def test_health_check_stays_open(url: str) -> None:
    assert requests.get(f"{url}/app_status", timeout=10).text == "OK"


@pytest.mark.parametrize(("versions", "expected"), [("v1", 1), ("v2", 2)])
def test_signed_responses_checked_by_the_client(
    service: LocalMAuthService,
    url: str,
    me: AppIdentity,
    caller: AppIdentity,
    versions: str,
    expected: int,
) -> None:
    client_auth = auth(
        caller, versions, authenticate_responses=True, config=service.config_for(caller)
    )
    answer = requests.get(f"{url}/signed", auth=client_auth, timeout=10)
    assert answer.status_code == 200
    assert answer.mauth_app_uuid == me.app_uuid  # type: ignore[attr-defined]
    assert answer.mauth_protocol_version == expected  # same version as the request
    with pytest.raises(InauthenticError, match="No mAuth signature"):
        requests.get(f"{url}/unsigned-response", auth=client_auth, timeout=10)


def test_error_to_an_unsigned_request_is_signed_with_both(url: str, me: AppIdentity) -> None:
    answer = requests.get(f"{url}/signed", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["MCC-Authentication"].startswith(f"MWSV2 {me.app_uuid}:")
    assert answer.headers["X-MWS-Authentication"].startswith(f"MWS {me.app_uuid}:")


def test_authenticate_all_with_exemptions(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    app = make_app(service, me, authenticate_all=True, exempt={"/app_status"})
    with werkzeug_server(app) as base:
        assert requests.get(f"{base}/app_status", timeout=10).status_code == 200
        assert requests.get(f"{base}/unsigned-response", timeout=10).status_code == 401
        assert (
            requests.get(f"{base}/unsigned-response", auth=auth(caller), timeout=10).status_code
            == 200
        )


def test_init_app_pattern_and_allow_list_from_config(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    mauth = FlaskAuthenticator()
    app = Flask("late")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid,
        MAUTH_PRIVATE_KEY=me.private_key,
        MAUTH_URL=service.url,
        MAUTH_APP_UUIDS=["nobody"],
    )

    @app.get("/x")
    @requires_authentication
    def view() -> str:
        return "x"

    mauth.init_app(app)
    assert app.extensions["mauth"] is mauth
    with werkzeug_server(app) as base:
        assert requests.get(f"{base}/x", auth=auth(caller), timeout=10).status_code == 403


def test_service_down_is_500(me: AppIdentity, caller: AppIdentity) -> None:
    with LocalMAuthService() as service:
        service.add_app(caller.app_uuid, caller.public_key)
        app = make_app(service, me)
    # The service is stopped now: no key can be fetched.
    app.config["unused"] = True
    with werkzeug_server(app) as base:
        answer = requests.get(f"{base}/echo/x", auth=auth(caller), timeout=30)
    assert answer.status_code == 500
    assert "could not be reached" in answer.json()["errors"]["mauth"][0]


def test_signing_responses_without_a_private_key_fails_at_start_up(
    service: LocalMAuthService,
) -> None:
    from mauth_client.exceptions import ConfigurationError

    app = Flask("no-key")
    app.config.update(MAUTH_APP_UUID="me", MAUTH_URL=service.url)
    with pytest.raises(ConfigurationError, match="MAUTH_PRIVATE_KEY"):
        FlaskAuthenticator(app, sign_responses=True)


def test_a_response_that_cannot_be_signed_is_sent_unsigned_and_logged(
    service: LocalMAuthService, caller: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    from mauth_client.authenticator import Authenticator
    from mauth_client.key_source import StaticKeySource

    app = Flask("no-key-decorator")
    app.config.update(MAUTH_APP_UUID="me")  # no private key: requests can be checked, not signed
    FlaskAuthenticator(
        app, authenticator=Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
    )

    @app.get("/x")
    @requires_authentication(sign_response=True)
    def view() -> str:
        return "body"

    with werkzeug_server(app) as base:
        answer = requests.get(f"{base}/x", auth=auth(caller), timeout=10)
    assert answer.status_code == 200 and answer.text == "body"
    assert "MCC-Authentication" not in answer.headers
    assert "could not be signed" in caplog.text


def test_decorator_without_the_extension_uses_app_config(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    app = Flask("decorator-only")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid, MAUTH_PRIVATE_KEY=me.private_key, MAUTH_URL=service.url
    )

    @app.get("/open")
    def open_view() -> str:
        return "open"

    @app.get("/x")
    @requires_authentication(sign_response=True)
    def view() -> Any:
        return jsonify(caller=g.mauth_app_uuid)

    client_auth = auth(caller, "v2", authenticate_responses=True, config=service.config_for(caller))
    with werkzeug_server(app) as base:
        assert requests.get(f"{base}/open", timeout=10).text == "open"  # the app has started
        answer = requests.get(f"{base}/x", auth=client_auth, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"caller": caller.app_uuid}
        assert answer.mauth_app_uuid == me.app_uuid  # type: ignore[attr-defined]
        assert requests.get(f"{base}/x", timeout=10).status_code == 401


def test_authenticate_all_signs_every_response(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    app = make_app(service, me, authenticate_all=True, exempt={"/app_status"}, sign_responses=True)
    client_auth = auth(caller, "v1", authenticate_responses=True, config=service.config_for(caller))
    with werkzeug_server(app) as base:
        answer = requests.get(
            f"{base}/unsigned-response", auth=client_auth, timeout=10
        )  # not decorated
        assert answer.status_code == 200 and answer.mauth_protocol_version == 1  # type: ignore[attr-defined]
        decorated = requests.post(f"{base}/echo/x", data=b"b", auth=client_auth, timeout=10)
        assert decorated.status_code == 200 and decorated.mauth_app_uuid == me.app_uuid  # type: ignore[attr-defined]
