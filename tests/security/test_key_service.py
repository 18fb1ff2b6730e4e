"""Issue 10 item 5 and item 1 (second half): a key service that cannot be spoofed.

Each test runs a real server on 127.0.0.1 playing a hostile or broken MAuth service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mauth_client.authenticator import Authenticator
from mauth_client.config import Config
from mauth_client.exceptions import ConfigurationError, UnableToAuthenticateError
from mauth_client.key_source import LocalKeySource, MAuthServiceClient
from mauth_client.keys import public_key_pem
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity

from ._servers import Recorder, keep_alive_server, raw_server, read_request_head

StartResponse = Callable[..., Any]
Fetch = Callable[[LocalKeySource, str], Any]


@pytest.fixture(params=["blocking", "async"])
def fetch(request: pytest.FixtureRequest) -> Fetch:
    """A key fetch through the blocking path (requests) or the async one
    (httpx.AsyncClient, issue 11 item 2): the same rules hold for both."""
    if request.param == "blocking":
        return lambda source, app_uuid: source.get_public_key(app_uuid)

    def fetch_async(source: LocalKeySource, app_uuid: str) -> Any:
        return asyncio.run(source.aget_public_key(app_uuid))

    return fetch_async


def config_for(me: AppIdentity, url: str, **overrides: Any) -> Config:
    return Config(app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url, **overrides)


def token(identity: AppIdentity, app_uuid: str | None = None) -> bytes:
    document: dict[str, Any] = {"public_key_str": identity.public_key}
    if app_uuid is not None:
        document["app_uuid"] = app_uuid
    return json.dumps({"security_token": document}).encode()


def answering(body: bytes, status: str = "200 OK") -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


# --- An answer for another app -------------------------------------------------------------


def test_answer_naming_another_app_is_refused(me: AppIdentity, fetch: Fetch) -> None:
    victim, attacker = generate_identity(), generate_identity()
    # The service (or whatever answers in its place) returns the attacker's token when
    # asked for the victim's key: the attacker could then sign as the victim.
    with keep_alive_server(answering(token(attacker, attacker.app_uuid))) as url:
        source = LocalKeySource(config_for(me, url))
        with pytest.raises(UnableToAuthenticateError, match="key of another app"):
            fetch(source, victim.app_uuid)
        # End to end: a request the attacker signs under the victim's UUID is not accepted.
        body = b"transfer"
        headers = Signer(victim.app_uuid, attacker.private_key, "v2").signed_headers(
            RequestSignable(method="POST", url="/pay", body=body)
        )
        ok, status, _ = Authenticator(source).is_authentic(
            RequestSignable(method="POST", url="/pay", body=body), Signed.from_headers(headers)
        )
        assert (ok, status) == (False, 500)


def test_answer_without_app_uuid_is_refused(me: AppIdentity, fetch: Fetch) -> None:
    other = generate_identity()
    with (
        keep_alive_server(answering(token(other))) as url,
        pytest.raises(UnableToAuthenticateError, match=r"no security_token\.app_uuid"),
    ):
        fetch(LocalKeySource(config_for(me, url)), other.app_uuid)


def test_app_uuid_matches_case_insensitively(me: AppIdentity, fetch: Fetch) -> None:
    other = generate_identity()
    with keep_alive_server(answering(token(other, other.app_uuid.upper()))) as url:
        key = fetch(LocalKeySource(config_for(me, url)), other.app_uuid)
    assert public_key_pem(key).strip() == other.public_key.strip()


# --- Redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", ["302 Found", "307 Temporary Redirect", "308 Permanent Redirect"]
)
@pytest.mark.parametrize("mode", ["local", "remote"])
def test_redirect_to_another_origin_is_not_followed(
    me: AppIdentity, status: str, mode: str
) -> None:
    elsewhere = Recorder()
    with keep_alive_server(elsewhere) as other_url:

        def redirector(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
            target = other_url + environ["PATH_INFO"]
            start_response(status, [("Location", target), ("Content-Length", "0")])
            return []

        with keep_alive_server(redirector) as url:
            config = config_for(me, url, mauth_mode=mode)
            caller = generate_identity()
            signable = RequestSignable(method="POST", url="/x", body=b"b")
            signed = Signed.from_headers(
                Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(signable)
            )
            with pytest.raises(UnableToAuthenticateError, match="redirected to another origin"):
                Authenticator.from_config(config).authenticate(signable, signed)
    assert elsewhere.seen == []  # the other origin received nothing, signed or not


def test_same_origin_redirect_is_followed_and_signed_again(me: AppIdentity, fetch: Fetch) -> None:
    service = LocalMAuthService()
    service.add_app(me.app_uuid, me.public_key)
    caller = service.new_app()

    def moving(environ: dict[str, Any], start_response: StartResponse) -> Any:
        # The key moved to the same path with a query: only a request signed for the new
        # target passes the service's V2 check (V2 signs the query; section 3).
        if "moved=1" not in environ.get("QUERY_STRING", ""):
            target = environ["PATH_INFO"] + "?moved=1"
            start_response(
                "307 Temporary Redirect", [("Location", target), ("Content-Length", "0")]
            )
            return []
        return service(environ, start_response)

    with keep_alive_server(moving) as url:
        source = LocalKeySource(config_for(me, url, sign_versions="v2"))
        key = fetch(source, caller.app_uuid)
    assert public_key_pem(key).strip() == caller.public_key.strip()
    assert service.calls("security_tokens", caller.app_uuid) == 1


def test_redirect_loop_on_the_same_origin_is_bounded(me: AppIdentity, fetch: Fetch) -> None:
    hits = []

    def loop(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        hits.append(1)
        start_response("302 Found", [("Location", environ["PATH_INFO"]), ("Content-Length", "0")])
        return []

    with (
        keep_alive_server(loop) as url,
        pytest.raises(UnableToAuthenticateError, match="redirected more than 3 times"),
    ):
        fetch(LocalKeySource(config_for(me, url)), generate_identity().app_uuid)
    assert len(hits) == 4


# --- Size --------------------------------------------------------------------------------


def test_oversize_answer_is_refused(me: AppIdentity, fetch: Fetch) -> None:
    other = generate_identity()
    document = json.loads(token(other, other.app_uuid))
    document["padding"] = "x" * (70 * 1024)  # a valid token, but 70 KiB
    with (
        keep_alive_server(answering(json.dumps(document).encode())) as url,
        pytest.raises(UnableToAuthenticateError, match="larger than 64 KiB"),
    ):
        fetch(LocalKeySource(config_for(me, url)), other.app_uuid)


def test_endless_answer_is_cut_short(me: AppIdentity, fetch: Fetch) -> None:
    """No Content-Length, an endless chunked body: the client stops reading after 64 KiB."""
    sent = []
    total = 200 * 1024 * 1024

    def endless(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        chunk = b" " * 65536
        for _ in range(total // len(chunk)):
            sent.append(len(chunk))
            yield chunk

    with keep_alive_server(endless) as url:
        started = time.monotonic()
        with pytest.raises(UnableToAuthenticateError, match="larger than 64 KiB"):
            fetch(LocalKeySource(config_for(me, url)), generate_identity().app_uuid)
        elapsed = time.monotonic() - started
    assert sum(sent) < total // 2  # the server was stopped long before the end
    assert elapsed < 10


# --- Duration ----------------------------------------------------------------------------


def test_drip_fed_body_is_bounded_by_the_deadline(me: AppIdentity, fetch: Fetch) -> None:
    """One byte every 0.2 s never trips a 1 s read timeout; the whole-call deadline cuts it."""
    other = generate_identity()
    body = token(other, other.app_uuid)
    state = {"dripped": 0, "finished": False}

    def drip(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        for byte in body:  # about 500 bytes: 100 s if read to the end
            time.sleep(0.2)
            state["dripped"] += 1
            yield bytes([byte])
        state["finished"] = True

    with keep_alive_server(drip) as url:
        source = LocalKeySource(config_for(me, url, read_timeout=1.0, lookup_deadline=1.5))
        started = time.monotonic()
        with pytest.raises(
            UnableToAuthenticateError, match=r"did not answer in full within 1\.5 s"
        ):
            fetch(source, other.app_uuid)
        elapsed = time.monotonic() - started
        still_dripping = not state["finished"]
    assert elapsed < 4.0  # the deadline (1.5 s) plus scheduling slack, not 100 s
    assert still_dripping and state["dripped"] > 3  # the server was still sending


def test_drip_fed_headers_are_bounded_by_the_deadline(me: AppIdentity, fetch: Fetch) -> None:
    """Headers sent one byte at a time: the read timeout never fires, the watchdog does."""
    state = {"finished": False}

    def drip_headers(connection: socket.socket) -> None:
        read_request_head(connection)
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"
        for byte in head:
            connection.sendall(bytes([byte]))
            time.sleep(0.1)
        state["finished"] = True

    with raw_server(drip_headers) as url:
        source = LocalKeySource(config_for(me, url, read_timeout=1.0, lookup_deadline=1.5))
        started = time.monotonic()
        with pytest.raises(
            UnableToAuthenticateError, match=r"did not answer in full within 1\.5 s"
        ):
            fetch(source, generate_identity().app_uuid)
        elapsed = time.monotonic() - started
        assert not state["finished"]
    assert elapsed < 4.0


def test_retries_stop_at_the_deadline(me: AppIdentity, fetch: Fetch) -> None:
    calls = []

    def failing(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls.append(1)
        time.sleep(0.4)
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return []

    with keep_alive_server(failing) as url:
        config = config_for(me, url, retries=50, retry_backoff=0.05, lookup_deadline=1.5)
        started = time.monotonic()
        with pytest.raises(UnableToAuthenticateError):
            fetch(LocalKeySource(config), generate_identity().app_uuid)
        elapsed = time.monotonic() - started
    assert elapsed < 3.5
    assert 2 <= len(calls) < 10  # retried, but not 51 times


# --- Clear-text service URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://mauth.example.com",
        "http://10.0.0.7:7000",
        "http://[2001:db8::1]/",
        "http://mauth-internal:80/",
    ],
)
def test_plain_http_outside_loopback_is_refused(me: AppIdentity, url: str) -> None:
    with pytest.raises(ConfigurationError, match="MAUTH_ALLOW_INSECURE_URL"):
        config_for(me, url)
    env = {"APP_UUID": me.app_uuid, "MAUTH_PRIVATE_KEY": me.private_key, "MAUTH_URL": url}
    with pytest.raises(ConfigurationError, match="plain http outside loopback"):
        Config.from_env(env)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1",
        "http://127.9.8.7",
        "http://localhost:8080",
        "http://[::1]:9000",
        "https://mauth.example.com",
    ],
)
def test_loopback_and_https_are_allowed(me: AppIdentity, url: str) -> None:
    assert MAuthServiceClient(config_for(me, url)).base.startswith(url.rstrip("/"))


def test_insecure_url_allowed_with_one_warning(
    me: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    url = "http://user:s3cret@mauth-insecure-test.example.com"
    env = {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_URL": url,
        "MAUTH_ALLOW_INSECURE_URL": "true",
    }
    with caplog.at_level(logging.WARNING, logger="mauth_client"):
        for _ in range(3):
            config = Config.from_env(env)
    assert config.allow_insecure_url is True
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "s3cret" not in warnings[0].getMessage()


# --- Concurrency sanity: the watchdog does not cut healthy calls ---------------------------


def test_many_quick_lookups_within_a_short_deadline(me: AppIdentity) -> None:
    with LocalMAuthService() as service:
        service.add_app(me.app_uuid, me.public_key)
        callers = [service.new_app() for _ in range(8)]
        source = LocalKeySource(service.config_for(me, lookup_deadline=5.0))
        errors: list[BaseException] = []

        def work(identity: AppIdentity) -> None:
            try:
                source.get_public_key(identity.app_uuid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in callers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert errors == []


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_lookup_deadline_must_be_a_positive_number(me: AppIdentity, value: str) -> None:
    env = {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_LOOKUP_DEADLINE": value,
    }
    with pytest.raises(ConfigurationError, match=r"MAUTH_LOOKUP_DEADLINE|lookup_deadline"):
        Config.from_env(env)
    assert Config.from_env({**env, "MAUTH_LOOKUP_DEADLINE": "2.5"}).lookup_deadline == 2.5
