"""Key caching against the real local MAuth service over HTTP (issue 12 and issue 10 item 8):
key rotation, stale keys while the service fails, the circuit breaker, lower-case
UUIDs, ``invalidate``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import InauthenticError, UnableToAuthenticateError
from mauth_client.key_source import LocalKeySource
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import werkzeug_server


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def signed(identity: AppIdentity, body: bytes = b"x", app_uuid: str | None = None) -> Any:
    signable = RequestSignable(method="POST", url="/things", body=body)
    headers = Signer(app_uuid or identity.app_uuid, identity.private_key, "v1,v2").signed_headers(
        signable
    )
    return RequestSignable(method="POST", url="/things", body=body), Signed.from_headers(headers)


def key_calls(service: LocalMAuthService, identity: AppIdentity) -> int:
    return service.calls("security_tokens", identity.app_uuid)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["mauth.app_uuid"].encode()]


# --- rotation ------------------------------------------------------------------------------


def test_rotated_key_is_accepted_on_the_first_request_after_the_interval_with_one_fetch(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    config = service.config_for(me, min_key_refetch_interval=1)
    with werkzeug_server(MAuthWSGIMiddleware(app, config=config)) as url:

        def post(identity: AppIdentity, body: bytes) -> requests.Response:
            headers = Signer(identity.app_uuid, identity.private_key, "v2").signed_headers(
                RequestSignable(method="POST", url="/things", body=body)
            )
            return requests.post(f"{url}/things", data=body, headers=headers, timeout=10)

        assert post(caller, b"1").status_code == 200
        assert key_calls(service, caller) == 1
        rotated = service.rotate_key(caller)
        # Within the interval the cached key stands: no fetch, 401.
        assert post(rotated, b"2").status_code == 401
        assert key_calls(service, caller) == 1
        time.sleep(1.1)
        answer = post(rotated, b"3")
        assert answer.status_code == 200, answer.text
        assert key_calls(service, caller) == 2
        # The old key is gone; the new one stays cached.
        assert post(caller, b"4").status_code == 401
        assert post(rotated, b"5").status_code == 200
        assert key_calls(service, caller) == 2


def test_at_most_one_refetch_per_app_per_interval(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    clock = FakeClock()
    authenticator = Authenticator.from_config(
        service.config_for(me, min_key_refetch_interval=30), clock=clock
    )
    stranger = service.new_app()  # signs with its key under the caller's UUID: never valid
    authenticator.authenticate(*signed(caller))
    clock.now += 31
    for n in range(20):
        with pytest.raises(InauthenticError):
            authenticator.authenticate(*signed(stranger, str(n).encode(), caller.app_uuid))
    assert key_calls(service, caller) == 2  # the first fetch and one refetch
    clock.now += 31
    with pytest.raises(InauthenticError):
        authenticator.authenticate(*signed(stranger, b"later", caller.app_uuid))
    assert key_calls(service, caller) == 3


def test_concurrent_requests_after_rotation_share_one_fetch(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    clock = FakeClock()
    service.latency = 0.0
    authenticator = Authenticator.from_config(
        service.config_for(me, min_key_refetch_interval=30), clock=clock
    )
    authenticator.authenticate(*signed(caller))
    rotated = service.rotate_key(caller)
    clock.now += 31
    service.latency = 0.2  # the refetch is slow: the others join it
    results: list[str] = []
    barrier = threading.Barrier(10)

    def check(n: int) -> None:
        request = signed(rotated, str(n).encode())
        barrier.wait()
        try:
            results.append(authenticator.authenticate(*request).app_uuid)
        except InauthenticError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=check, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [caller.app_uuid] * 10
    assert key_calls(service, caller) == 2


# --- stale keys and the circuit breaker ---------------------------------------------------


@pytest.fixture
def short_lived(me: AppIdentity) -> Iterator[LocalMAuthService]:
    with LocalMAuthService(max_age=60) as running:
        running.add_app(me.app_uuid, me.public_key)
        yield running


@pytest.mark.parametrize("failure", ["stopped", "503", "timeout"])
def test_expired_key_is_used_while_the_service_fails(
    short_lived: LocalMAuthService,
    me: AppIdentity,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    caller = short_lived.new_app()
    clock = FakeClock()
    config = short_lived.config_for(me, max_stale=3600, retries=0, read_timeout=0.3)
    source = LocalKeySource(config, clock=clock)
    key = source.get_public_key(caller.app_uuid)
    clock.now += 61  # expired
    if failure == "stopped":
        short_lived.stop()
    elif failure == "503":
        short_lived.fail_status = 503
    else:
        short_lived.latency = 1.0
    with caplog.at_level(logging.WARNING, logger="mauth_client"):
        assert source.get_public_key(caller.app_uuid) is key
        clock.now += 3000
        assert source.get_public_key(caller.app_uuid) is key
    stale = [r for r in caplog.records if "using the public key" in r.getMessage()]
    assert stale and stale[0].levelno == logging.WARNING
    clock.now += 700  # more than max_stale after expiry: could not authenticate, as before
    with pytest.raises(UnableToAuthenticateError):
        source.get_public_key(caller.app_uuid)


def test_stale_key_end_to_end_with_the_service_stopped(me: AppIdentity) -> None:
    with LocalMAuthService(max_age=1) as service:
        service.add_app(me.app_uuid, me.public_key)
        caller = service.new_app()
        authenticator = Authenticator.from_config(service.config_for(me, retries=0))
        authenticator.authenticate(*signed(caller, b"before"))
        service.stop()
        time.sleep(1.2)  # the key has expired and the service is down
        assert authenticator.authenticate(*signed(caller, b"after")).app_uuid == caller.app_uuid


def test_circuit_breaker_fails_fast_and_logs_once(
    service: LocalMAuthService, me: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    source = LocalKeySource(
        service.config_for(me, retries=1, retry_backoff=0, lookup_failure_cooldown=5),
        clock=clock,
    )
    apps = [service.new_app() for _ in range(3)]
    service.fail_status = 502
    with caplog.at_level(logging.WARNING, logger="mauth_client"):
        with pytest.raises(UnableToAuthenticateError):
            source.get_public_key(apps[0].app_uuid)
        assert service.calls("all") == 2  # one lookup and its retry
        for identity in apps * 3:  # within the cooldown: no call at all, for any app
            with pytest.raises(UnableToAuthenticateError, match="a moment ago"):
                source.get_public_key(identity.app_uuid)
        assert service.calls("all") == 2
        clock.now += 5.1  # half-open: one more try, still failing
        with pytest.raises(UnableToAuthenticateError):
            source.get_public_key(apps[1].app_uuid)
        assert service.calls("all") == 4
        service.fail_status = None
        clock.now += 5.1
        assert source.get_public_key(apps[2].app_uuid) is not None
    failing = [r for r in caplog.records if "lookups are failing" in r.getMessage()]
    assert len(failing) == 1 and failing[0].levelno == logging.ERROR
    assert any("work again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_refusing_service_opens_the_breaker_on_both_paths(
    service: LocalMAuthService, me: AppIdentity, path: str
) -> None:
    """A 403 (or any answer that is neither a key nor a 404) is one rule for the blocking
    and the async fetch: the lookup fails and the next one within the cooldown fails
    fast, without a call (they used to differ: only the async path tripped)."""
    import asyncio

    source = LocalKeySource(service.config_for(me, lookup_failure_cooldown=5))
    apps = [service.new_app() for _ in range(2)]
    service.fail_status = 403

    def look(app_uuid: str) -> object:
        if path == "sync":
            return source.get_public_key(app_uuid)
        return asyncio.run(source.aget_public_key(app_uuid))

    with pytest.raises(UnableToAuthenticateError, match="403"):
        look(apps[0].app_uuid)
    calls = service.calls("all")
    with pytest.raises(UnableToAuthenticateError, match="a moment ago"):
        look(apps[1].app_uuid)
    assert service.calls("all") == calls


def test_unknown_app_does_not_open_the_breaker(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    source = LocalKeySource(service.config_for(me))
    with pytest.raises(InauthenticError):
        source.get_public_key("00000000-0000-4000-8000-000000000000")
    assert source.get_public_key(caller.app_uuid) is not None


# --- lower case, invalidate ------------------------------------------------------------------


def test_case_variants_share_one_lookup(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    authenticator = Authenticator.from_config(service.config_for(me))
    variants = [caller.app_uuid, caller.app_uuid.upper(), caller.app_uuid.title()]
    for n, app_uuid in enumerate(variants):
        result = authenticator.authenticate(*signed(caller, str(n).encode(), app_uuid))
        assert result.app_uuid == app_uuid  # the caller's spelling, as signed
    assert key_calls(service, caller) == 1


def test_unknown_app_is_cached_negatively_in_lower_case(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    source = LocalKeySource(service.config_for(me))
    unknown = "0000000a-0000-4000-8000-00000000000b"
    for variant in (unknown, unknown.upper()):
        with pytest.raises(InauthenticError):
            source.get_public_key(variant)
    assert service.calls("security_tokens") == 1


def test_invalidate(service: LocalMAuthService, me: AppIdentity, caller: AppIdentity) -> None:
    other = service.new_app()
    authenticator = Authenticator.from_config(service.config_for(me))
    authenticator.authenticate(*signed(caller))
    authenticator.authenticate(*signed(other))
    key_source: Any = authenticator.key_source
    key_source.invalidate(caller.app_uuid.upper())
    authenticator.authenticate(*signed(caller, b"again"))
    authenticator.authenticate(*signed(other, b"again"))
    assert (key_calls(service, caller), key_calls(service, other)) == (2, 1)
    key_source.invalidate()
    authenticator.authenticate(*signed(caller, b"third"))
    authenticator.authenticate(*signed(other, b"third"))
    assert (key_calls(service, caller), key_calls(service, other)) == (3, 2)


def test_rotate_key_serves_the_new_key(service: LocalMAuthService, caller: AppIdentity) -> None:
    rotated = service.rotate_key(caller)
    assert rotated.app_uuid == caller.app_uuid
    assert rotated.public_key != caller.public_key
    assert service.keys.pem(caller.app_uuid) == rotated.public_key
    assert service.keys.pem(caller.app_uuid.upper()) == rotated.public_key


def test_async_lookups_share_the_stale_key_breaker_and_lower_case(
    short_lived: LocalMAuthService, me: AppIdentity
) -> None:
    import asyncio

    caller = short_lived.new_app()
    clock = FakeClock()
    source = LocalKeySource(short_lived.config_for(me, retries=0), clock=clock)
    key = asyncio.run(source.aget_public_key(caller.app_uuid.upper()))
    assert source.get_public_key(caller.app_uuid) is key  # one entry, lower case
    assert key_calls(short_lived, caller) == 1
    clock.now += 61  # expired; then the service goes away
    short_lived.stop()
    assert asyncio.run(source.aget_public_key(caller.app_uuid)) is key  # stale
    with pytest.raises(UnableToAuthenticateError, match="a moment ago"):  # breaker open
        asyncio.run(source.aget_public_key("00000000-0000-4000-8000-000000000001"))
