"""Replay protection (issue 12): the caches, the policy, every server adapter, real Redis."""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import requests

from mauth_client.authenticator import Authenticator
from mauth_client.config import Config
from mauth_client.exceptions import (
    ConfigurationError,
    InauthenticError,
    ReplayCacheUnavailable,
    ReplayedRequestError,
)
from mauth_client.key_source import StaticKeySource
from mauth_client.replay import (
    MemoryReplayCache,
    RedisReplayCache,
    ReplayCache,
    ReplayProtection,
    cache_from_setting,
    signature_keys,
)
from mauth_client.server import RequestGuard
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService
from mauth_client.testing.redis_server import LocalRedisServer

from .servers import uvicorn_server, werkzeug_server


def sign(
    caller: AppIdentity,
    method: str = "POST",
    url: str = "/orders?x=1",
    body: bytes = b'{"n": 1}',
    versions: str = "v1,v2",
    time: int | None = None,
) -> dict[str, str]:
    attributes = {"time": time} if time is not None else None
    return Signer(caller.app_uuid, caller.private_key, versions).signed_headers(
        RequestSignable(method=method, url=url, body=body), attributes
    )


def request(method: str = "POST", url: str = "/orders?x=1", body: bytes = b'{"n": 1}') -> Any:
    return RequestSignable(method=method, url=url, body=body)


@pytest.fixture(scope="module")
def ident() -> AppIdentity:
    from mauth_client.testing import generate_identity

    return generate_identity()


@pytest.fixture
def authenticator(ident: AppIdentity) -> Authenticator:
    return Authenticator(
        StaticKeySource({ident.app_uuid: ident.public_key}), replay_cache=MemoryReplayCache()
    )


# --- the policy, with the memory cache ------------------------------------------------


def test_second_acceptance_is_a_replay(authenticator: Authenticator, ident: AppIdentity) -> None:
    headers = sign(ident)
    assert authenticator.authenticate(request(), Signed.from_headers(headers)).app_uuid
    with pytest.raises(ReplayedRequestError, match="replay"):
        authenticator.authenticate(request(), Signed.from_headers(headers))
    ok, status, message = authenticator.is_authentic(request(), Signed.from_headers(headers))
    assert (ok, status) == (False, 401)
    assert "replay" in message


def test_off_by_default_as_upstream(ident: AppIdentity) -> None:
    plain = Authenticator(StaticKeySource({ident.app_uuid: ident.public_key}))
    headers = sign(ident)
    for _ in range(3):
        plain.authenticate(request(), Signed.from_headers(headers))


def test_a_new_signature_is_accepted(authenticator: Authenticator, ident: AppIdentity) -> None:
    authenticator.clock = lambda: 1_800_000_000
    authenticator.authenticate(request(), Signed.from_headers(sign(ident, time=1_800_000_000)))
    # Same content, next second: a new signature, not a replay.
    authenticator.clock = lambda: 1_800_000_001
    authenticator.authenticate(request(), Signed.from_headers(sign(ident, time=1_800_000_001)))


@pytest.mark.parametrize("keep", ["X-MWS", "MCC"])
def test_stripping_one_header_pair_is_still_a_replay(
    authenticator: Authenticator, ident: AppIdentity, keep: str
) -> None:
    headers = sign(ident)
    authenticator.authenticate(request(), Signed.from_headers(headers))
    stripped = {k: v for k, v in headers.items() if k.upper().startswith(keep)}
    assert len(stripped) == 2
    with pytest.raises(ReplayedRequestError):
        authenticator.authenticate(request(), Signed.from_headers(stripped))


def test_v1_only_and_v2_only_requests_are_protected(
    authenticator: Authenticator, ident: AppIdentity
) -> None:
    for versions in ("v1", "v2"):
        headers = sign(ident, versions=versions, body=versions.encode())
        authenticator.authenticate(request(body=versions.encode()), Signed.from_headers(headers))
        with pytest.raises(ReplayedRequestError):
            authenticator.authenticate(
                request(body=versions.encode()), Signed.from_headers(headers)
            )


def test_forged_request_does_not_poison_the_cache(
    authenticator: Authenticator, ident: AppIdentity
) -> None:
    headers = sign(ident, body=b"genuine")
    # The attacker sends the genuine signature with another body first: rejected...
    with pytest.raises(InauthenticError) as caught:
        authenticator.authenticate(request(body=b"forged"), Signed.from_headers(headers))
    assert not isinstance(caught.value, ReplayedRequestError)
    # ...and not recorded, so the genuine request still goes through.
    authenticator.authenticate(request(body=b"genuine"), Signed.from_headers(headers))


def test_respelled_base64_signature_is_still_a_replay(
    authenticator: Authenticator, ident: AppIdentity
) -> None:
    """Attack: base64's unused low bits in the last character give one signature
    several spellings that decode (and verify) the same."""
    headers = sign(ident, versions="v2")
    authenticator.authenticate(request(), Signed.from_headers(headers))
    value = headers["MCC-Authentication"]
    signature = value.split(":", 1)[1].rstrip(";")
    assert signature.endswith("==")  # 256 bytes: one byte in the last quantum, 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(signature[-3])
    respelled = signature[:-3] + alphabet[last ^ 0b0101] + "=="
    assert respelled != signature
    assert base64.b64decode(respelled) == base64.b64decode(signature)
    forged = dict(headers, **{"MCC-Authentication": value.replace(signature, respelled)})
    with pytest.raises(ReplayedRequestError):
        authenticator.authenticate(request(), Signed.from_headers(forged))


def test_safe_methods_are_not_protected_by_default(
    authenticator: Authenticator, ident: AppIdentity
) -> None:
    for method in ("GET", "HEAD", "OPTIONS"):
        headers = sign(ident, method=method, body=b"")
        for _ in range(2):
            authenticator.authenticate(request(method, body=b""), Signed.from_headers(headers))
    headers = sign(ident, method="DELETE", body=b"")
    authenticator.authenticate(request("DELETE", body=b""), Signed.from_headers(headers))
    with pytest.raises(ReplayedRequestError):
        authenticator.authenticate(request("DELETE", body=b""), Signed.from_headers(headers))


def test_replay_methods_setting(ident: AppIdentity) -> None:
    source = StaticKeySource({ident.app_uuid: ident.public_key})
    only_get = Authenticator(source, replay_cache=MemoryReplayCache(), replay_methods="get")
    post = sign(ident)
    for _ in range(2):
        only_get.authenticate(request(), Signed.from_headers(post))
    get = sign(ident, method="GET", body=b"")
    only_get.authenticate(request("GET", body=b""), Signed.from_headers(get))
    with pytest.raises(ReplayedRequestError):
        only_get.authenticate(request("GET", body=b""), Signed.from_headers(get))
    assert ReplayProtection(MemoryReplayCache(), methods="*").protects("GET")
    with pytest.raises(ConfigurationError, match="MAUTH_REPLAY_METHODS"):
        Config(replay_methods="POST,P/UT")


def test_memory_cache_expires_with_the_window_and_stays_bounded() -> None:
    now = [1000.0]
    cache = MemoryReplayCache(max_entries=3, clock=lambda: now[0])
    assert cache.record(["a"], 1300)
    assert not cache.record(["a"], 1300)
    now[0] = 1300.0  # expired exactly at expires_at
    assert cache.record(["a"], 1600)
    for name in "bcde":
        assert cache.record([name], 1600)
    assert len(cache) == 3  # bounded: the oldest went first
    assert not cache.record(["e"], 1600)


def test_memory_cache_is_atomic_across_threads() -> None:
    cache = MemoryReplayCache()
    wins: list[bool] = []
    barrier = threading.Barrier(16)

    def race() -> None:
        barrier.wait()
        wins.append(cache.record(["k1", "k2"], 2**40))

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 15 + [True]


def test_a_pluggable_cache(ident: AppIdentity) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[list[str], int]] = []

        def record(self, keys: Any, expires_at: int) -> bool:
            self.calls.append((list(keys), expires_at))
            return len(self.calls) == 1

    recorder = Recorder()
    assert isinstance(recorder, ReplayCache)
    auth = Authenticator(StaticKeySource({ident.app_uuid: ident.public_key}), replay_cache=recorder)
    auth.clock = lambda: 1_800_000_000
    headers = sign(ident, time=1_800_000_000)
    auth.authenticate(request(), Signed.from_headers(headers))
    keys, expires_at = recorder.calls[0]
    assert len(keys) == 2 and keys[0].startswith("v2:") and keys[1].startswith("v1:")
    assert expires_at == 1_800_000_000 + 300 + 1
    with pytest.raises(ReplayedRequestError):
        auth.authenticate(request(), Signed.from_headers(headers))


def test_signature_keys_differ_per_signature(ident: AppIdentity) -> None:
    one = signature_keys(Signed.from_headers(sign(ident, body=b"1")))
    two = signature_keys(Signed.from_headers(sign(ident, body=b"2")))
    assert len(set(one + two)) == 4


# --- configuration --------------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    config = Config.from_env(
        {
            "MAUTH_REPLAY_CACHE": "redis://:s3cret@127.0.0.1:6379/2",
            "MAUTH_REPLAY_METHODS": "POST,PUT",
            "MAUTH_REPLAY_FAIL_OPEN": "true",
            "MAUTH_MIN_KEY_REFETCH_INTERVAL": "12",
            "MAUTH_MAX_STALE": "60",
        }
    )
    assert config.replay_cache == "redis://:s3cret@127.0.0.1:6379/2"
    assert (config.replay_methods, config.replay_fail_open) == ("POST,PUT", True)
    assert (config.min_key_refetch_interval, config.max_stale) == (12.0, 60.0)
    assert "s3cret" not in repr(config)
    assert Config.from_env({}).replay_cache is None


@pytest.mark.parametrize(
    "value",
    [
        "memcached://127.0.0.1",
        "redis//:s3cret@host",
        "redis://:s3cret@",
        "redis://:s3cret@host:notaport/0",
        "redis://:s3cret@host:6379/zero",
        "memroy",
    ],
)
def test_malformed_replay_cache_setting(value: str) -> None:
    with pytest.raises(ConfigurationError, match="MAUTH_REPLAY_CACHE") as caught:
        Config.from_env({"MAUTH_REPLAY_CACHE": value})
    assert "s3cret" not in str(caught.value)


def test_malformed_flag_and_numbers() -> None:
    with pytest.raises(ConfigurationError, match="MAUTH_REPLAY_FAIL_OPEN"):
        Config.from_env({"MAUTH_REPLAY_FAIL_OPEN": "maybe"})
    with pytest.raises(ConfigurationError, match="MAUTH_MAX_STALE"):
        Config.from_env({"MAUTH_MAX_STALE": "an hour"})
    with pytest.raises(ConfigurationError, match="replay_cache"):
        Config(replay_cache=42)


def test_memory_setting_builds_a_memory_cache() -> None:
    assert isinstance(cache_from_setting("memory"), MemoryReplayCache)
    assert cache_from_setting(None) is None
    mine = MemoryReplayCache()
    assert cache_from_setting(mine) is mine


# --- Redis ------------------------------------------------------------------------------


def test_redis_cache_records_once_with_expiry(mauth_redis: LocalRedisServer) -> None:
    import redis

    cache = RedisReplayCache(mauth_redis.url)
    cache.check()
    client = redis.Redis.from_url(mauth_redis.url)
    now = int(client.time()[0])
    assert cache.record(["v2:abc", "v1:def"], now + 301)
    assert not cache.record(["v2:abc"], now + 301)
    assert not cache.record(["v1:def", "v2:new"], now + 301)
    ttl = client.ttl("mauth:replay:v2:abc")
    assert 295 <= ttl <= 301
    assert client.exists("mauth:replay:v2:new")  # recorded in the same transaction


def test_redis_cache_accepts_a_client(mauth_redis: LocalRedisServer) -> None:
    import redis

    cache = RedisReplayCache(redis.Redis.from_url(mauth_redis.url), key_prefix="app1:")
    assert cache.record(["x"], 2**32)
    assert not cache.record(["x"], 2**32)
    assert RedisReplayCache(mauth_redis.url, key_prefix="app2:").record(["x"], 2**32)


def test_redis_cache_is_atomic_across_threads(mauth_redis: LocalRedisServer) -> None:
    cache = RedisReplayCache(mauth_redis.url)
    wins: list[bool] = []
    barrier = threading.Barrier(20)

    def race() -> None:
        barrier.wait()
        wins.append(cache.record(["v2:k", "v1:k"], 2**32))

    threads = [threading.Thread(target=race) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 19 + [True]


def test_password_protected_redis_without_credentials() -> None:
    with LocalRedisServer(password="s3cret-pw") as server:
        bare = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(ConfigurationError, match="MAUTH_REPLAY_CACHE") as caught:
            cache_from_setting(bare)
        assert "password" in str(caught.value)
        wrong = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
        with pytest.raises(ConfigurationError, match="MAUTH_REPLAY_CACHE") as caught:
            cache_from_setting(wrong)
        assert "wrong-pw" not in str(caught.value)
        cache = cache_from_setting(server.url)
        assert cache is not None and cache.record(["k"], 2**32)
        assert "s3cret-pw" not in repr(cache)


def test_unreachable_redis_is_503_naming_the_setting(
    ident: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalRedisServer(password="s3cret-pw")  # never started: nothing listens
    try:
        with caplog.at_level(logging.WARNING, logger="mauth_client"):
            cache = cache_from_setting(server.url)  # start-up: logged, not fatal
        assert cache is not None
        guard = RequestGuard(
            Authenticator(StaticKeySource({ident.app_uuid: ident.public_key}), replay_cache=cache)
        )
        headers = sign(ident)
        outcome = guard.check("POST", "/orders", "x=1", headers, b'{"n": 1}')
        assert outcome.status == 503
        assert "MAUTH_REPLAY_CACHE" in outcome.message
        assert "s3cret-pw" not in outcome.message + caplog.text
        # GET is not protected, so it does not need Redis.
        get = sign(ident, method="GET", body=b"")
        assert guard.check("GET", "/orders", "x=1", get, b"").status == 200
    finally:
        server.close()


def test_fail_open_accepts_and_logs_once(
    ident: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalRedisServer()
    try:
        cache = RedisReplayCache(server.url, connect_timeout=0.2)
        auth = Authenticator(
            StaticKeySource({ident.app_uuid: ident.public_key}),
            replay_cache=cache,
            replay_fail_open=True,
        )
        with caplog.at_level(logging.ERROR, logger="mauth_client"):
            for n in range(3):
                body = str(n).encode()
                auth.authenticate(request(body=body), Signed.from_headers(sign(ident, body=body)))
        off = [r for r in caplog.records if "replay protection is OFF" in r.getMessage()]
        assert len(off) == 1
        assert off[0].levelno == logging.ERROR
    finally:
        server.close()


def test_redis_error_answers_are_503(mauth_redis: LocalRedisServer) -> None:
    import redis

    redis.Redis.from_url(mauth_redis.url).set("mauth:replay:v2:taken", "x")
    # A Redis that refuses SET (read-only replica behaviour, simulated by a full memory
    # budget with noeviction) answers an error: 503, not a traceback.
    client = redis.Redis.from_url(mauth_redis.url)
    client.config_set("maxmemory", 1)
    client.config_set("maxmemory-policy", "noeviction")
    try:
        with pytest.raises(ReplayCacheUnavailable, match="MAUTH_REPLAY_CACHE"):
            RedisReplayCache(mauth_redis.url).record(["v2:fresh"], 2**32)
    finally:
        client.config_set("maxmemory", 0)


# --- every server adapter ------------------------------------------------------------------


def _echo_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def replay_config(service: LocalMAuthService, me: AppIdentity) -> Config:
    return service.config_for(me, replay_cache="memory")


def _send_twice(url: str, caller: AppIdentity) -> list[requests.Response]:
    headers = sign(caller, url="/echo/x?y=1", body=b"payload")
    return [
        requests.post(f"{url}/echo/x?y=1", data=b"payload", headers=headers, timeout=10)
        for _ in range(2)
    ]


def _assert_replayed(answers: list[Any], first: int = 200) -> None:
    assert answers[0].status_code == first
    assert answers[1].status_code == 401
    assert "replay" in answers[1].json()["errors"]["mauth"][0]


def test_wsgi_middleware(replay_config: Config, caller: AppIdentity) -> None:
    from mauth_client.middlewares import MAuthWSGIMiddleware

    with werkzeug_server(MAuthWSGIMiddleware(_echo_wsgi, config=replay_config)) as url:
        _assert_replayed(_send_twice(url, caller))


def test_asgi_middleware(replay_config: Config, caller: AppIdentity) -> None:
    from mauth_client.middlewares import MAuthASGIMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with uvicorn_server(MAuthASGIMiddleware(app, config=replay_config)) as url:
        _assert_replayed(_send_twice(url, caller))


def test_flask(replay_config: Config, caller: AppIdentity) -> None:
    from flask import Flask

    from mauth_client.flask_authenticator import FlaskAuthenticator

    app = Flask("replay")
    FlaskAuthenticator(app, config=replay_config, authenticate_all=True)
    app.add_url_rule("/echo/<path:rest>", "echo", lambda rest: "ok", methods=["POST"])
    with werkzeug_server(app) as url:
        _assert_replayed(_send_twice(url, caller))


def test_flask_reads_the_setting_from_app_config(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    from flask import Flask

    from mauth_client.flask_authenticator import FlaskAuthenticator

    app = Flask("replay")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid,
        MAUTH_PRIVATE_KEY=me.private_key,
        MAUTH_URL=service.url,
        MAUTH_REPLAY_CACHE="memory",
    )
    FlaskAuthenticator(app, authenticate_all=True)
    app.add_url_rule("/echo/<path:rest>", "echo", lambda rest: "ok", methods=["POST"])
    with werkzeug_server(app) as url:
        _assert_replayed(_send_twice(url, caller))


def test_lambda_with_redis(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, mauth_redis: LocalRedisServer
) -> None:
    from mauth_client.lambda_authenticator import LambdaAuthenticator, authenticate_event

    config = service.config_for(me, replay_cache=mauth_redis.url)
    headers = sign(caller, url="/echo/x?y=1", body=b"payload")
    event = {
        "version": "2.0",
        "rawPath": "/echo/x",
        "rawQueryString": "y=1",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST"}},
        "body": "payload",
    }
    first = authenticate_event(event, config=config)
    assert tuple(first) == (True, 200, "")
    # A second container (new authenticator, same Redis) sees the replay.
    again = LambdaAuthenticator(
        "POST", "/echo/x?y=1", headers, "payload", config=config
    ).is_authentic()
    assert again[:2] == (False, 401) and "replay" in again[2]
    mauth_redis.stop()
    down = authenticate_event(event, config=config)
    assert down[:2] == (False, 503) and "MAUTH_REPLAY_CACHE" in down[2]


@pytest.fixture
def django_client(service: LocalMAuthService, me: AppIdentity) -> Iterator[Any]:
    pytest.importorskip("django")
    from django.test import Client, override_settings

    from . import test_django  # configures Django once

    options = {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_URL": service.url,
        "MAUTH_REPLAY_CACHE": "memory",
    }
    del test_django
    with override_settings(MAUTH=options):
        yield Client()


def test_django(django_client: Any, caller: AppIdentity) -> None:
    headers = sign(caller, url="/required/x", body=b"payload")
    meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    answers = [
        django_client.post("/required/x", data=b"payload", content_type="text/plain", **meta)
        for _ in range(2)
    ]
    assert answers[0].status_code == 200, answers[0].content
    assert answers[1].status_code == 401
    assert "replay" in answers[1].json()["errors"]["mauth"][0]


def test_requests_client_retrying_in_a_later_second_signs_again(
    replay_config: Config, caller: AppIdentity
) -> None:
    """The README's advice: the project's clients sign every call, so a POST retried
    in a later second passes; a copy within the same second is a replay."""
    import time

    from mauth_client.middlewares import MAuthWSGIMiddleware
    from mauth_client.requests_mauth import MAuth

    with werkzeug_server(MAuthWSGIMiddleware(_echo_wsgi, config=replay_config)) as url:
        session = requests.Session()
        session.auth = MAuth(caller.app_uuid, caller.private_key, "v1,v2")
        first = session.post(f"{url}/orders", data=b"same body", timeout=10)
        time.sleep(1.05)  # a backoff of at least one second
        retry = session.post(f"{url}/orders", data=b"same body", timeout=10)
        assert (first.status_code, retry.status_code) == (200, 200)
        assert first.request.headers["MCC-Time"] != retry.request.headers["MCC-Time"]
        copy = requests.post(
            f"{url}/orders", data=b"same body", headers=dict(retry.request.headers), timeout=10
        )
        assert copy.status_code == 401


def test_v1_signature_without_its_leading_zero_byte_is_not_accepted_twice(
    authenticator: Authenticator, ident: AppIdentity
) -> None:
    """Attack: a V1 signature whose first byte is 0 sent again without it (OpenSSL's
    RSA public decrypt takes a shorter input). It must not count as a new signature."""
    for n in range(4000):
        body = b"%d" % n
        headers = sign(ident, versions="v1", body=body)
        raw = base64.b64decode(headers["X-MWS-Authentication"].split(":", 1)[1])
        if raw[0] == 0:
            break
    else:
        pytest.fail("no V1 signature starting with a zero byte in 4000 tries")
    authenticator.authenticate(request(body=body), Signed.from_headers(headers))
    shortened = base64.b64encode(raw[1:]).decode()
    value = headers["X-MWS-Authentication"].split(":", 1)[0] + ":" + shortened
    forged = dict(headers, **{"X-MWS-Authentication": value})
    plain = Authenticator(StaticKeySource({ident.app_uuid: ident.public_key}))
    verifies = plain.is_authentic(request(body=body), Signed.from_headers(forged))[0]
    # The verifier refuses the shortened signature (tests/security/test_signature_length.py);
    # were it to accept one, the replay cache must still stop it.
    expected = ReplayedRequestError if verifies else InauthenticError
    with pytest.raises(expected):
        authenticator.authenticate(request(body=body), Signed.from_headers(forged))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_memory_cache_works_in_a_child_forked_while_its_lock_was_held() -> None:
    import time

    cache = MemoryReplayCache()
    cache.record(["before-fork"], 2**40)
    with cache._lock:  # another thread is inside record() at fork time
        pid = os.fork()
        if pid == 0:  # the child: record() must not wait for a lock nobody will release
            ok = cache.record(["in-child"], 2**40) and not cache.record(["before-fork"], 2**40)
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child deadlocked on the replay cache's lock")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0


def test_upstream_local_authenticator_honours_mauth_replay_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drop-in: upstream's LocalAuthenticator with a patched KeyHolder, configured from
    the environment, gets replay protection from MAUTH_REPLAY_CACHE."""
    from mauth_client import authenticator as module
    from mauth_client.authenticator import LocalAuthenticator
    from mauth_client.key_holder import KeyHolder
    from mauth_client.testing import generate_identity

    caller = generate_identity()
    for name in ("MAUTH_URL", "APP_UUID", "MAUTH_APP_UUID", "V2_ONLY_AUTHENTICATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAUTH_REPLAY_CACHE", "memory")
    module.reset_default_authenticator()
    monkeypatch.setattr(
        KeyHolder, "get_public_key", classmethod(lambda cls, app: caller.public_key)
    )
    try:
        signed = Signed.from_headers(sign(caller))
        assert LocalAuthenticator(request(), signed, None).is_authentic() == (True, 200, "")
        again = LocalAuthenticator(request(), signed, None).is_authentic()
        assert again[:2] == (False, 401) and "replay" in again[2]
    finally:
        module.reset_default_authenticator()


def test_password_protected_redis_at_request_time_is_503() -> None:
    """A cache given as an object (so not checked at start-up) whose server wants a
    password: each protected request is a 503 naming the setting."""
    with LocalRedisServer(password="s3cret-pw") as server:
        cache = RedisReplayCache(f"redis://127.0.0.1:{server.port}/0")
        with pytest.raises(ReplayCacheUnavailable, match="MAUTH_REPLAY_CACHE") as caught:
            cache.record(["k"], 2**32)
        assert "s3cret-pw" not in str(caught.value)
        wrong = RedisReplayCache(f"redis://:wrong-pw@127.0.0.1:{server.port}/0")
        with pytest.raises(ReplayCacheUnavailable) as caught:
            wrong.record(["k"], 2**32)
        assert "wrong-pw" not in str(caught.value)


def test_rediss_urls_use_tls() -> None:
    import redis

    cache = RedisReplayCache("rediss://:s3cret@127.0.0.1:6380/1")
    assert cache.client.connection_pool.connection_class is redis.SSLConnection
    assert "s3cret" not in repr(cache)
    assert cache.client.connection_pool.connection_kwargs["db"] == 1


def _fastapi_app(config: Config) -> Any:
    from fastapi import Depends, FastAPI

    from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install

    required = MAuthRequired(config=config)
    app = FastAPI()
    install(app)

    async def echo(rest: str, caller: MAuthCaller = Depends(required)) -> Any:  # noqa: B008
        return {"app_uuid": caller.app_uuid, "loop_thread": threading.get_ident()}

    # Real annotations, not this module's postponed strings, which FastAPI would resolve
    # in the module's globals.
    echo.__annotations__ = {"rest": str, "caller": MAuthCaller, "return": Any}
    app.post("/echo/{rest}")(echo)

    return app


def test_fastapi_dependency(replay_config: Config, caller: AppIdentity) -> None:
    with uvicorn_server(_fastapi_app(replay_config)) as url:
        _assert_replayed(_send_twice(url, caller))


def test_fastapi_with_redis_checks_off_the_event_loop(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    mauth_redis: LocalRedisServer,
) -> None:
    class Recording(RedisReplayCache):
        threads: ClassVar[list[int]] = []

        def record(self, keys: Any, expires_at: int) -> bool:
            self.threads.append(threading.get_ident())
            return super().record(keys, expires_at)

    config = service.config_for(me, replay_cache=Recording(mauth_redis.url))
    with uvicorn_server(_fastapi_app(config)) as url:
        _assert_replayed(_send_twice(url, caller))
        # The key is cached now; a Redis round trip still leaves the event loop.
        body = b"second request"
        headers = sign(caller, url="/echo/x", body=body)
        answers = [
            requests.post(f"{url}/echo/x", data=body, headers=headers, timeout=10) for _ in range(2)
        ]
        _assert_replayed(answers)
        assert answers[0].json()["loop_thread"] not in Recording.threads
        assert len(Recording.threads) == 4
        mauth_redis.stop()
        body = b"while redis is down"
        headers = sign(caller, url="/echo/x", body=body)
        down = requests.post(f"{url}/echo/x", data=body, headers=headers, timeout=10)
        assert down.status_code == 503, down.text
        assert "MAUTH_REPLAY_CACHE" in down.json()["errors"]["mauth"][0]


def test_aiohttp_middleware(replay_config: Config, caller: AppIdentity) -> None:
    from aiohttp import web

    from mauth_client.aiohttp_mauth import MAuthWebMiddleware

    from .async_servers import aiohttp_server

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[MAuthWebMiddleware(config=replay_config)])
    app.router.add_post("/echo/{rest}", echo)
    with aiohttp_server(app) as url:
        _assert_replayed(_send_twice(url, caller))


def test_asgi_with_redis_records_off_the_event_loop(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    mauth_redis: LocalRedisServer,
) -> None:
    """A cached key lets the ASGI middleware verify on the event loop; a Redis round
    trip must not run there."""
    from mauth_client.middlewares import MAuthASGIMiddleware

    class Recording(RedisReplayCache):
        threads: ClassVar[list[int]] = []

        def record(self, keys: Any, expires_at: int) -> bool:
            self.threads.append(threading.get_ident())
            return super().record(keys, expires_at)

    loop_threads: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        loop_threads.append(threading.get_ident())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = service.config_for(me, replay_cache=Recording(mauth_redis.url))
    with uvicorn_server(MAuthASGIMiddleware(app, config=config)) as url:
        for n in range(3):  # the first fetches the key; the others find it cached
            body = b"request %d" % n
            headers = sign(caller, url="/echo/x", body=body)
            answers = [
                requests.post(f"{url}/echo/x", data=body, headers=headers, timeout=10)
                for _ in range(2)
            ]
            _assert_replayed(answers)
    assert len(Recording.threads) == 6
    assert not set(loop_threads) & set(Recording.threads)
