"""What upstream mauth-client's users do in their test suites keeps working (issue 9).

Each test uses a habit exactly as those suites do: ``freezegun.freeze_time``,
``Config.APP_UUID = ...`` on the class, ``mock.patch.object(LocalAuthenticator,
"is_authentic", ...)``, ``KeyHolder.get_public_key``; plus the reuse that makes the
compatibility entry points as cheap as the core (one key fetch per app, one guard per
config, one parse per private key PEM). Keys come from a real local MAuth service.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import freezegun
import pytest
import requests
from flask import Flask

from mauth_client.authenticator import (
    Authenticator,
    LocalAuthenticator,
    RemoteAuthenticator,
    default_authenticator,
    reset_default_authenticator,
)
from mauth_client.config import ENV_NAMES, Config
from mauth_client.exceptions import ConfigurationError
from mauth_client.flask_authenticator import FlaskAuthenticator
from mauth_client.key_holder import KeyHolder
from mauth_client.key_source import StaticKeySource
from mauth_client.keys import load_private_key
from mauth_client.lambda_authenticator import LambdaAuthenticator, authenticate_event
from mauth_client.middlewares import MAuthASGIMiddleware, MAuthWSGIMiddleware
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .conftest import REPO, VECTORS
from .servers import uvicorn_server, werkzeug_server

UPSTREAM_NAMES = (
    "APP_UUID",
    "MAUTH_URL",
    "MAUTH_API_VERSION",
    "MAUTH_MODE",
    "PRIVATE_KEY",
    "V2_ONLY_AUTHENTICATE",
    "SIGN_VERSIONS",
    "DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE",
)
SIGNED_AT = 1_700_000_000  # 2023-11-14 22:13:20 UTC
URL = "https://api.example.com/v1/things?b=2&a=1"
BODY = '{"thing": "ü"}'
LOGGER = logging.getLogger("upstream_habits")


def _forget_class_attributes() -> None:
    for name in UPSTREAM_NAMES:
        if name in Config.__dict__:
            delattr(Config, name)


@pytest.fixture(autouse=True)
def clean_slate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MAuth environment, no class attributes, no default authenticator: before and after."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    _forget_class_attributes()
    reset_default_authenticator()
    yield
    _forget_class_attributes()
    reset_default_authenticator()


def _use_environment(
    monkeypatch: pytest.MonkeyPatch, service: LocalMAuthService, me: AppIdentity
) -> None:
    monkeypatch.setenv("APP_UUID", me.app_uuid)
    monkeypatch.setenv("MAUTH_URL", service.url)
    monkeypatch.setenv("MAUTH_PRIVATE_KEY", me.private_key)


def _signed(caller: AppIdentity, versions: str = "v2", when: int | None = None) -> Signed:
    """Signed now, or at ``when``."""
    attributes = {"time": when} if when is not None else None
    headers = Signer(caller.app_uuid, caller.private_key, versions).signed_headers(
        RequestSignable(method="POST", url=URL, body=BODY), attributes
    )
    return Signed.from_headers(headers)


def _local(
    caller: AppIdentity, versions: str = "v2", when: int | None = None
) -> LocalAuthenticator:
    signable = RequestSignable(method="POST", url=URL, body=BODY)
    return LocalAuthenticator(signable, _signed(caller, versions, when), LOGGER)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


# --- 1. freezegun controls the time the authenticator checks against ---------------------


def test_freeze_time_controls_the_authenticators_clock(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    _use_environment(monkeypatch, service, me)
    # Fetched before freezing: the key service checks our signed call against real time.
    KeyHolder.get_public_key(caller.app_uuid)
    with freezegun.freeze_time(_at(SIGNED_AT + 30)):
        assert _local(caller, when=SIGNED_AT).is_authentic() == (True, 200, "")
    with freezegun.freeze_time(_at(SIGNED_AT + 301)):  # the window is 300 seconds
        authentic, status, message = _local(caller, when=SIGNED_AT).is_authentic()
    assert (authentic, status) == (False, 401)
    assert "Time verification failed" in message and "301 seconds old" in message


def test_freeze_time_as_a_decorator_and_for_signing(caller: AppIdentity) -> None:
    @freezegun.freeze_time(_at(SIGNED_AT))
    def sign_and_check() -> tuple[str, bool]:
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/x")
        )
        authenticator = Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
        result = authenticator.is_authentic(
            RequestSignable(method="GET", url="/x"), Signed.from_headers(headers)
        )
        return headers["MCC-Time"], result[0]

    assert sign_and_check() == (str(SIGNED_AT), True)


def test_an_injected_clock_wins_over_freezegun(caller: AppIdentity) -> None:
    authenticator = Authenticator(
        StaticKeySource({caller.app_uuid: caller.public_key}), clock=lambda: float(SIGNED_AT)
    )
    signable = RequestSignable(method="POST", url=URL, body=BODY)
    with freezegun.freeze_time(_at(SIGNED_AT + 10_000)):
        signed = _signed(caller, when=SIGNED_AT)
        assert authenticator.is_authentic(signable, signed) == (True, 200, "")


# --- 2. Config class attributes ---------------------------------------------------------


def test_class_attributes_configure_everything_built_afterwards(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    Config.APP_UUID = me.app_uuid
    Config.MAUTH_URL = service.url
    Config.PRIVATE_KEY = me.private_key
    Config.SIGN_VERSIONS = "v2"
    config = Config.from_env()
    assert (config.app_uuid, config.mauth_url, config.sign_versions) == (
        me.app_uuid,
        service.url,
        "v2",
    )
    assert MAuth().signer.app_uuid == me.app_uuid  # no arguments: the class attributes
    assert MAuth().signer.sign_versions == ("v2",)
    assert _local(caller).is_authentic() == (True, 200, "")  # keys via Config.MAUTH_URL
    assert service.calls("security_tokens", caller.app_uuid) == 1
    MAuthWSGIMiddleware(lambda environ, start_response: [])  # configured: builds


def test_class_attributes_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_UUID", "from-the-environment")
    monkeypatch.setenv("MAUTH_URL", "http://127.0.0.1:9")
    Config.APP_UUID = "from-the-class"
    Config.MAUTH_URL = None  # as upstream's suites do to say "not configured"
    config = Config.from_env()
    assert (config.app_uuid, config.mauth_url) == ("from-the-class", None)
    del Config.APP_UUID
    assert Config.from_env().app_uuid == "from-the-environment"


def test_v2_only_class_attribute_applies_to_the_next_request(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    _use_environment(monkeypatch, service, me)
    assert _local(caller, "v1").is_authentic() == (True, 200, "")
    Config.V2_ONLY_AUTHENTICATE = True
    authentic, status, message = _local(caller, "v1").is_authentic()
    assert (authentic, status) == (False, 401) and "requires mAuth v2" in message
    Config.V2_ONLY_AUTHENTICATE = "false"  # text, as read from an environment
    assert _local(caller, "v1").is_authentic() == (True, 200, "")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_UUID", 42),
        ("MAUTH_URL", ["http://127.0.0.1"]),
        ("PRIVATE_KEY", 3.5),
        ("V2_ONLY_AUTHENTICATE", 1.0),
        ("SIGN_VERSIONS", 2),
        ("MAUTH_MODE", object()),
    ],
)
def test_odd_class_attribute_types_name_the_attribute(name: str, value: object) -> None:
    setattr(Config, name, value)
    with pytest.raises(ConfigurationError, match=rf"Config\.{name} must be"):
        Config.from_env()
    with pytest.raises(ConfigurationError, match=rf"Config\.{name} must be"):
        MAuthWSGIMiddleware(lambda environ, start_response: [])


def test_a_class_attribute_flag_that_is_not_a_boolean_is_named() -> None:
    Config.V2_ONLY_AUTHENTICATE = "sometimes"
    with pytest.raises(ConfigurationError, match=r"Config\.V2_ONLY_AUTHENTICATE must be true or"):
        Config.from_env()


def test_odd_class_attribute_in_the_authenticator_is_a_500_not_a_traceback(
    caller: AppIdentity,
) -> None:
    Config.APP_UUID = 42
    authentic, status, message = _local(caller).is_authentic()
    assert (authentic, status) == (False, 500) and "Config.APP_UUID" in message


# --- 3. patching LocalAuthenticator.is_authentic lets requests through --------------------


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    document = {
        "app_uuid": environ.get("mauth.app_uuid"),
        "authentic": environ.get("mauth.authentic"),
        "version": environ.get("mauth.protocol_version"),
        "body": environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode(),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(document).encode()]


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    document = {
        "app_uuid": scope.get("mauth.app_uuid"),
        "authentic": scope.get("mauth.authentic"),
        "version": scope.get("mauth.protocol_version"),
        "body": body.decode(),
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(document).encode()})


def _configure_as_upstream_suites_do(service: LocalMAuthService) -> None:
    Config.APP_UUID = "2f746447-c212-483c-9eec-d9b0216f7613"
    Config.MAUTH_URL = service.url
    Config.MAUTH_API_VERSION = "v1"
    Config.PRIVATE_KEY = "key"  # never used: the patched check decides


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_patched_is_authentic_lets_requests_through_both_middlewares(
    kind: str, service: LocalMAuthService
) -> None:
    _configure_as_upstream_suites_do(service)
    if kind == "wsgi":
        server = werkzeug_server(MAuthWSGIMiddleware(_wsgi_app, exempt={"/app_status"}))
    else:
        server = uvicorn_server(MAuthASGIMiddleware(_asgi_app, exempt={"/app_status"}))
    v2 = {"MCC-Authentication": "MWSV2 caller-app:blah;", "MCC-Time": "1"}
    with server as base:
        assert requests.get(base + "/", headers=v2, timeout=10).status_code == 401
        with mock.patch.object(LocalAuthenticator, "is_authentic") as is_authentic:
            is_authentic.return_value = (True, 200, "")
            response = requests.post(base + "/things", headers=v2, data="hello", timeout=10)
            unsigned = requests.get(base + "/", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "app_uuid": "caller-app",
            "authentic": True,
            "version": 2,
            "body": "hello",
        }
        assert unsigned.status_code == 200 and unsigned.json()["app_uuid"] == ""
        with mock.patch.object(
            LocalAuthenticator, "is_authentic", return_value=(False, 401, "nope")
        ):
            refused = requests.get(base + "/", headers=v2, timeout=10)
        assert refused.status_code == 401
        assert refused.json() == {"errors": {"mauth": ["nope"]}}
        assert requests.get(base + "/", headers=v2, timeout=10).status_code == 401  # unpatched
    assert service.calls("security_tokens") == 0


def test_patched_is_authentic_applies_to_flask_views(service: LocalMAuthService) -> None:
    from mauth_client.flask_authenticator import requires_authentication

    _configure_as_upstream_suites_do(service)
    app = Flask("habits")
    FlaskAuthenticator(app)

    @app.get("/")
    @requires_authentication
    def root() -> str:
        return "Ping"

    client = app.test_client()
    assert client.get("/").status_code == 401
    with mock.patch.object(LocalAuthenticator, "is_authentic", return_value=(True, 200, "")):
        assert client.get("/").get_data() == b"Ping"


def test_lambda_authenticator_follows_patches_and_class_attributes(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    _use_environment(monkeypatch, service, me)
    headers = Signer(caller.app_uuid, caller.private_key, "v1").signed_headers(
        RequestSignable(method="POST", url=URL, body=BODY)
    )
    assert LambdaAuthenticator("POST", URL, headers, BODY).is_authentic() == (True, 200, "")
    Config.V2_ONLY_AUTHENTICATE = True  # set after the default was built: still honoured
    assert LambdaAuthenticator("POST", URL, headers, BODY).is_authentic()[:2] == (False, 401)
    with mock.patch.object(LocalAuthenticator, "is_authentic", return_value=(True, 200, "")):
        check = LambdaAuthenticator("GET", "/anything", {}, None)
        assert check.is_authentic() == (True, 200, "")
    assert service.calls("security_tokens") == 1


# --- 4. no configuration: an error where the adapter is built ----------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: MAuthWSGIMiddleware(lambda environ, start_response: []),
        lambda: MAuthASGIMiddleware(_asgi_app),
        lambda: FlaskAuthenticator(Flask("habits")),
        lambda: FlaskAuthenticator().init_app(Flask("habits")),
    ],
    ids=["wsgi", "asgi", "flask", "flask-init_app"],
)
def test_no_configuration_fails_at_construction_naming_what_to_set(build: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    message = str(caught.value)
    if "Flask" in message:
        for name in ("APP_UUID", "MAUTH_PRIVATE_KEY", "MAUTH_URL"):
            assert name in message
    else:  # the middlewares upstream had: in its words
        assert message.endswith(
            " requires APP_UUID and PRIVATE_KEY, and MAUTH_URL and MAUTH_API_VERSION"
        )
    assert isinstance(caught.value, TypeError)  # what upstream raised: except clauses match


@pytest.mark.parametrize(
    ("unset", "expected"),
    [
        ("APP_UUID", "MAuthWSGIMiddleware requires APP_UUID and PRIVATE_KEY"),
        ("PRIVATE_KEY", "MAuthWSGIMiddleware requires APP_UUID and PRIVATE_KEY"),
        ("MAUTH_URL", "MAuthWSGIMiddleware requires MAUTH_URL and MAUTH_API_VERSION"),
        ("MAUTH_API_VERSION", "MAuthWSGIMiddleware requires MAUTH_URL and MAUTH_API_VERSION"),
    ],
)
def test_missing_settings_are_named_in_upstream_words(
    service: LocalMAuthService, unset: str, expected: str
) -> None:
    """Upstream's suites compare these messages for equality."""
    _configure_as_upstream_suites_do(service)
    setattr(Config, unset, None)
    with pytest.raises(TypeError) as caught:
        MAuthWSGIMiddleware(lambda environ, start_response: [])
    assert str(caught.value) == expected


def test_partial_configuration_names_only_what_is_missing(service: LocalMAuthService) -> None:
    _configure_as_upstream_suites_do(service)
    Config.PRIVATE_KEY = None
    with pytest.raises(ConfigurationError) as caught:
        MAuthWSGIMiddleware(lambda environ, start_response: [])
    assert "PRIVATE_KEY" in str(caught.value) and "MAUTH_URL" not in str(caught.value)


def test_api_version_unset_on_the_class_is_named(service: LocalMAuthService) -> None:
    _configure_as_upstream_suites_do(service)
    Config.MAUTH_API_VERSION = None
    with pytest.raises(TypeError, match="MAUTH_API_VERSION"):
        MAuthASGIMiddleware(_asgi_app)


def test_a_prebuilt_authenticator_needs_no_configuration(caller: AppIdentity) -> None:
    authenticator = Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
    MAuthWSGIMiddleware(lambda environ, start_response: [], authenticator=authenticator)
    MAuthASGIMiddleware(_asgi_app, authenticator=authenticator)
    FlaskAuthenticator(Flask("habits"), authenticator=authenticator)


# --- 5. KeyHolder.get_public_key returns the PEM as served -------------------------------


def test_key_holder_returns_the_pem_as_the_service_served_it(
    monkeypatch: pytest.MonkeyPatch, service: LocalMAuthService, me: AppIdentity
) -> None:
    served = (VECTORS / "signing-key.rsapub.pem").read_text()  # PKCS #1: BEGIN RSA PUBLIC KEY
    vector_app = "b0603e5c-c344-488c-83ba-db7e4a6e2a57"
    service.add_app(vector_app, served)
    _use_environment(monkeypatch, service, me)
    assert KeyHolder.get_public_key(vector_app) == served
    # The parsed key is cached for verifying: a request signed with the vector key
    # authenticates without another fetch.
    signable = RequestSignable(method="POST", url=URL, body=BODY)
    headers = Signer(vector_app, (VECTORS / "signing-key.pem").read_text(), "v2").signed_headers(
        signable
    )
    assert LocalAuthenticator(signable, Signed.from_headers(headers), LOGGER).is_authentic()[0]
    assert KeyHolder.get_public_key(vector_app) == served
    assert service.calls("security_tokens", vector_app) == 1


def test_patched_key_holder_supplies_keys(caller: AppIdentity) -> None:
    with (
        mock.patch.object(KeyHolder, "get_public_key", return_value=caller.public_key),
        freezegun.freeze_time(_at(SIGNED_AT)),
    ):
        assert _local(caller, when=SIGNED_AT).is_authentic() == (True, 200, "")


# --- 6. Signed fields are "" when absent --------------------------------------------------


def test_signed_fields_are_empty_strings_when_absent() -> None:
    signed = Signed.from_headers({})
    assert (signed.token, signed.app_uuid, signed.signature) == ("", "", "")
    malformed = Signed.from_headers({"MCC-Time": "1", "MCC-Authentication": "MWS app:c2ln"})
    assert (malformed.token, malformed.app_uuid, malformed.signature) == ("", "", "")
    assert malformed.protocol_version() == 2  # still a V2 message, refused as malformed


# --- 7. unknown sign versions are ignored with a warning ----------------------------------


def test_unknown_sign_versions_are_ignored_with_a_warning(
    caller: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mauth_client"):
        signer = Signer(caller.app_uuid, caller.private_key, "v1, V2,v777")
    assert signer.sign_versions == ("v1", "v2")
    headers = signer.signed_headers(RequestSignable(method="GET", url="/x"))
    assert {"X-MWS-Authentication", "MCC-Authentication"} <= set(headers)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'v777'" in warnings[0].getMessage()
    assert caller.private_key not in caplog.text
    assert MAuth(caller.app_uuid, caller.private_key, "v2,v9").signer.sign_versions == ("v2",)


@pytest.mark.parametrize("versions", ["v777", "v3,v4", " , "])
def test_a_value_with_no_known_version_raises(caller: AppIdentity, versions: str) -> None:
    with pytest.raises(ConfigurationError, match="no known MAuth sign version"):
        Signer(caller.app_uuid, caller.private_key, versions)


# --- reuse: one default authenticator, one guard per config, one parse per PEM -----------


def test_fifty_threads_ten_new_apps_fetch_each_key_once(
    monkeypatch: pytest.MonkeyPatch, service: LocalMAuthService, me: AppIdentity
) -> None:
    _use_environment(monkeypatch, service, me)
    apps = [service.new_app() for _ in range(10)]
    requests_by_app = [
        (RequestSignable(method="POST", url=URL, body=BODY), _signed(app)) for app in apps
    ]
    barrier = threading.Barrier(50)
    results: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for signable, signed in requests_by_app:
            authentic = LocalAuthenticator(signable, signed, LOGGER).is_authentic()[0]
            with lock:
                results.append(authentic)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [True] * 500
    assert service.calls("security_tokens") == 10
    for app in apps:
        assert service.calls("security_tokens", app.app_uuid) == 1


def test_the_environment_is_read_again_only_when_it_changes(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    _use_environment(monkeypatch, service, me)
    for _ in range(3):
        assert _local(caller).is_authentic()[0]
    assert service.calls("security_tokens") == 1
    with LocalMAuthService() as other:
        other.add_app(caller.app_uuid, caller.public_key)
        other.add_app(me.app_uuid, me.public_key)
        monkeypatch.setenv("MAUTH_URL", other.url)  # changed: the next call sees it
        assert _local(caller).is_authentic()[0]
        assert other.calls("security_tokens") == 1
        reset_default_authenticator()  # asked to forget: fetched again
        assert _local(caller).is_authentic()[0]
        assert other.calls("security_tokens") == 2
    assert service.calls("security_tokens") == 1


def test_remote_authenticator_reuses_its_default_too(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    _use_environment(monkeypatch, service, me)
    signable = RequestSignable(method="POST", url=URL, body=BODY)
    for _ in range(5):
        check = RemoteAuthenticator(signable, _signed(caller), LOGGER)
        assert check.is_authentic() == (True, 200, "")
    assert service.calls("authentication_tickets") == 5  # the service decides each time
    assert default_authenticator("remote") is default_authenticator("remote")
    assert service.calls("security_tokens") == 0
    tampered = RequestSignable(method="POST", url=URL, body=BODY + "x")
    refused = RemoteAuthenticator(tampered, _signed(caller), LOGGER).is_authentic()
    assert refused[:2] == (False, 401)


def _event(caller: AppIdentity) -> dict[str, Any]:
    headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/prod/things?b=2&a=1", body=BODY)
    )
    return {
        "version": "2.0",
        "rawPath": "/prod/things",
        "rawQueryString": "b=2&a=1",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST"}},
        "body": BODY,
        "isBase64Encoded": False,
    }


def test_authenticate_event_with_a_config_fetches_the_key_once(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    config = service.config_for(me)
    event = _event(caller)
    for _ in range(200):
        assert authenticate_event(event, config=config).authentic
    assert service.calls("security_tokens") == 1
    equal = service.config_for(me)  # an equal config, built again: the same guard
    assert authenticate_event(event, config=equal).authentic
    assert service.calls("security_tokens") == 1


def test_lambda_authenticator_with_a_config_fetches_the_key_once(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    config = service.config_for(me)
    event = _event(caller)
    url = "https://x.example/prod/things?b=2&a=1"
    for _ in range(200):
        check = LambdaAuthenticator("POST", url, event["headers"], BODY, config=config)
        assert check.is_authentic() == (True, 200, "")
    assert service.calls("security_tokens") == 1


def test_a_private_key_pem_is_parsed_once(me: AppIdentity) -> None:
    first = load_private_key(me.private_key)
    assert load_private_key(me.private_key) is first
    escaped = me.private_key.replace("\n", "\\n")  # the same key as an env var may hold it
    assert load_private_key(escaped) is first
    assert MAuth(me.app_uuid, me.private_key, "v2").signer._key is first
    assert load_private_key(first) is first  # a parsed key passes straight through


def test_importing_the_core_and_sources_loads_no_network_or_framework_module() -> None:
    code = (
        "import sys\n"
        "import mauth_client.key_source, mauth_client.authenticator, mauth_client.key_holder\n"
        "import mauth_client.lambda_authenticator, mauth_client.middlewares, mauth_client.config\n"
        "import mauth_client.server, mauth_client.client\n"
        "heavy = ('requests', 'boto3', 'botocore', 'flask', 'django', 'httpx', 'starlette', 'aiohttp')\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "", f"imported eagerly: {out.stdout.strip()}"
    assert Path(REPO, "mauth_client").is_dir()
