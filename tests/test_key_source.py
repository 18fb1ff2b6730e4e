"""Local and remote mode over real HTTP against the local MAuth service on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mauth_client.authenticator import Authenticator, LocalAuthenticator
from mauth_client.config import Config
from mauth_client.exceptions import InauthenticError, UnableToAuthenticateError
from mauth_client.key_holder import KeyHolder
from mauth_client.key_source import LocalKeySource, max_age
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService
from mauth_client.testing.service import generate_identity
from mauth_client.testing.service import serve_wsgi as serve


class FakeClock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed_request(identity: AppIdentity, body: bytes = b"hello", versions: str = "v1,v2"):  # type: ignore[no-untyped-def]
    signable = RequestSignable(method="POST", url="/orders?x=1", body=body)
    headers = Signer(identity.app_uuid, identity.private_key, versions).signed_headers(signable)
    return RequestSignable(method="POST", url="/orders?x=1", body=body), Signed.from_headers(
        headers
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Local mode ---------------------------------------------------------------------------


def test_local_mode_authenticates_and_caches(service: LocalMAuthService, me: AppIdentity) -> None:
    caller = service.new_app()
    authenticator = Authenticator.from_config(service.config_for(me))
    for _ in range(5):
        assert authenticator.authenticate(*signed_request(caller)).app_uuid == caller.app_uuid
    assert service.calls("security_tokens", caller.app_uuid) == 1


def test_local_mode_rejects_tampering(service: LocalMAuthService, me: AppIdentity) -> None:
    caller = service.new_app()
    _signable, signed = signed_request(caller)
    tampered = RequestSignable(method="POST", url="/orders?x=1", body=b"hellO")
    assert Authenticator.from_config(service.config_for(me)).is_authentic(tampered, signed)[:2] == (
        False,
        401,
    )


def test_key_expiry_follows_max_age(me: AppIdentity) -> None:
    clock = FakeClock()
    with LocalMAuthService(max_age=60) as service:
        service.add_app(me.app_uuid, me.public_key)
        caller = service.new_app()
        source = LocalKeySource(service.config_for(me), clock=clock)
        source.get_public_key(caller.app_uuid)
        clock.now += 59
        source.get_public_key(caller.app_uuid)
        assert service.calls("security_tokens", caller.app_uuid) == 1
        clock.now += 2  # 61 s after the fetch: expired
        source.get_public_key(caller.app_uuid)
        assert service.calls("security_tokens", caller.app_uuid) == 2


def test_default_ttl_without_cache_control(me: AppIdentity) -> None:
    clock = FakeClock()
    with LocalMAuthService(max_age=None) as service:
        service.add_app(me.app_uuid, me.public_key)
        caller = service.new_app()
        source = LocalKeySource(service.config_for(me), clock=clock)
        source.get_public_key(caller.app_uuid)
        clock.now += 299
        source.get_public_key(caller.app_uuid)
        assert service.calls("security_tokens", caller.app_uuid) == 1
        clock.now += 2
        source.get_public_key(caller.app_uuid)
        assert service.calls("security_tokens", caller.app_uuid) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 300),
        ("max-age=60", 60),
        ("public, max-age=7", 7),
        ("no-cache", 0),
        ("max-age=99999999999", 86400),
        ("private", 300),
        ('max-age="5"', 5),
    ],
)
def test_max_age_parsing(header: str | None, expected: int) -> None:
    assert max_age(header, 300, 86400) == expected


def test_single_flight_50_threads_10_apps(me: AppIdentity) -> None:
    with LocalMAuthService(latency=0.2) as service:
        service.add_app(me.app_uuid, me.public_key)
        callers = [service.new_app() for _ in range(10)]
        requests_ = [signed_request(callers[i % 10]) for i in range(50)]
        authenticator = Authenticator.from_config(service.config_for(me))
        service.reset_counters()
        barrier = threading.Barrier(50)
        results: list[object] = [None] * 50

        def work(i: int) -> None:
            barrier.wait()
            try:
                results[i] = authenticator.authenticate(*requests_[i]).app_uuid
            except Exception as exc:
                results[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [callers[i % 10].app_uuid for i in range(50)]
        assert service.calls("security_tokens") == 10
        assert all(service.calls("security_tokens", c.app_uuid) == 1 for c in callers)


def test_unknown_apps_are_cached_negatively(service: LocalMAuthService, me: AppIdentity) -> None:
    strangers = [generate_identity() for _ in range(5)]  # never registered
    authenticator = Authenticator.from_config(service.config_for(me))
    signed = [signed_request(s) for s in strangers]
    for i in range(500):
        ok, status, _message = authenticator.is_authentic(*signed[i % 5])
        assert (ok, status) == (False, 401)
    assert service.calls("security_tokens") <= 5


def test_negative_cache_expires(service: LocalMAuthService, me: AppIdentity) -> None:
    clock = FakeClock()
    source = LocalKeySource(service.config_for(me, negative_cache_ttl=30), clock=clock)
    late = generate_identity()
    with pytest.raises(InauthenticError):
        source.get_public_key(late.app_uuid)
    service.add_app(late.app_uuid, late.public_key)  # registered afterwards
    with pytest.raises(InauthenticError):
        source.get_public_key(late.app_uuid)  # still cached as unknown
    clock.now += 31
    source.get_public_key(late.app_uuid)
    assert service.calls("security_tokens", late.app_uuid) == 2


def test_service_down_is_unable_to_authenticate_quickly(me: AppIdentity) -> None:
    config = Config(
        app_uuid=me.app_uuid,
        private_key=me.private_key,
        mauth_url=f"http://127.0.0.1:{closed_port()}",
        retry_backoff=0.05,
    )
    started = time.monotonic()
    with pytest.raises(UnableToAuthenticateError, match="could not be reached"):
        LocalKeySource(config).get_public_key("anyone")
    assert time.monotonic() - started < 3


def test_slow_service_times_out_without_hanging(me: AppIdentity) -> None:
    with LocalMAuthService(latency=3) as service:
        service.add_app(me.app_uuid, me.public_key)
        caller = service.new_app()
        authenticator = Authenticator.from_config(service.config_for(me, read_timeout=0.3))
        started = time.monotonic()
        ok, status, message = authenticator.is_authentic(*signed_request(caller))
        elapsed = time.monotonic() - started
    assert (ok, status) == (False, 500)
    assert "did not answer within 0.3 s" in message
    assert elapsed < 2  # one read timeout, not retried


def test_service_500_is_retried_twice_then_500(me: AppIdentity) -> None:
    with LocalMAuthService(fail_status=500) as service:
        authenticator = Authenticator.from_config(service.config_for(me, retry_backoff=0.01))
        ok, status, message = authenticator.is_authentic(*signed_request(generate_identity()))
        assert (ok, status) == (False, 500)
        assert "answered 500" in message
        assert service.calls() == 3  # the first try and two retries


def test_app_uuid_is_percent_encoded_into_the_url(me: AppIdentity) -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ["RAW_URI"])
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b"{}"]

    with serve(app) as url:
        source = LocalKeySource(
            Config(app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url)
        )
        with pytest.raises(InauthenticError):
            source.get_public_key("../../admin/x?y=1#z")
    assert seen == ["/mauth/v1/security_tokens/..%2F..%2Fadmin%2Fx%3Fy%3D1%23z.json"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[]", "no security_token.public_key_str"),
        (b'{"security_token": {}}', "no security_token.public_key_str"),
        (b'{"security_token": {"public_key_str": 5}}', "no security_token.public_key_str"),
        (
            b'{"security_token": {"public_key_str": "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"}}',
            "does not parse",
        ),
    ],
)
def test_malformed_answers(me: AppIdentity, body: bytes, message: str) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    with serve(app) as url:
        source = LocalKeySource(
            Config(app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url)
        )
        with pytest.raises(UnableToAuthenticateError, match=message):
            source.get_public_key("someone")


def test_unexpected_status_is_unable_to_authenticate(me: AppIdentity) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("403 Forbidden", [])
        return [b""]

    with serve(app) as url:
        source = LocalKeySource(
            Config(app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url)
        )
        with pytest.raises(UnableToAuthenticateError, match="answered 403"):
            source.get_public_key("someone")


# --- The KeyHolder seam -----------------------------------------------------------------


def test_patching_key_holder_supplies_keys(
    monkeypatch: pytest.MonkeyPatch, service: LocalMAuthService, me: AppIdentity
) -> None:
    outsider = generate_identity()  # not registered with the service at all
    monkeypatch.setattr(
        KeyHolder, "get_public_key", classmethod(lambda cls, app: outsider.public_key)
    )
    authenticator = Authenticator.from_config(service.config_for(me))
    assert authenticator.authenticate(*signed_request(outsider)).app_uuid == outsider.app_uuid
    assert service.calls("security_tokens") == 0


def test_upstream_local_authenticator_with_patched_key_holder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller = generate_identity()
    for name in ("MAUTH_URL", "APP_UUID", "MAUTH_APP_UUID", "V2_ONLY_AUTHENTICATE"):
        monkeypatch.delenv(name, raising=False)
    from mauth_client import authenticator as module

    module.reset_default_authenticator()
    monkeypatch.setattr(
        KeyHolder, "get_public_key", classmethod(lambda cls, app: caller.public_key)
    )
    signable, signed = signed_request(caller)
    assert LocalAuthenticator(signable, signed, None).is_authentic() == (True, 200, "")
    tampered = RequestSignable(method="POST", url="/orders?x=1", body=b"other")
    assert LocalAuthenticator(tampered, signed, None).is_authentic()[:2] == (False, 401)
    module.reset_default_authenticator()


def test_unpatched_key_holder_without_mauth_url_is_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAUTH_URL", "APP_UUID", "MAUTH_APP_UUID"):
        monkeypatch.delenv(name, raising=False)
    from mauth_client import authenticator as module

    module.reset_default_authenticator()
    signable, signed = signed_request(generate_identity())
    ok, status, message = LocalAuthenticator(signable, signed, None).is_authentic()
    assert (ok, status) == (False, 500) and "MAUTH_URL" in message
    module.reset_default_authenticator()


# --- Remote mode ----------------------------------------------------------------------------


def test_remote_mode(service: LocalMAuthService, me: AppIdentity) -> None:
    caller = service.new_app()
    authenticator = Authenticator.from_config(service.config_for(me, mauth_mode="remote"))
    for versions, expected in (("v2", 2), ("v1", 1)):
        assert (
            authenticator.authenticate(*signed_request(caller, versions=versions)).protocol_version
            == expected
        )
    assert service.calls("authentication_tickets") == 2
    assert service.calls("security_tokens") == 0  # the service checked, not us
    _, signed = signed_request(caller, versions="v2")
    tampered = RequestSignable(method="POST", url="/orders?x=1", body=b"evil")
    with pytest.raises(InauthenticError, match="inauthentic \\(412\\)"):
        authenticator.authenticate(tampered, signed)


@pytest.mark.parametrize(
    ("status", "outcome"), [(404, 401), (412, 401), (500, 500), (418, 500), (204, 200)]
)
def test_remote_mode_statuses(me: AppIdentity, status: int, outcome: int) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(f"{status} X", [])
        return [b""]

    with serve(app) as url:
        config = Config(
            app_uuid=me.app_uuid,
            private_key=me.private_key,
            mauth_url=url,
            mauth_mode="remote",
            retry_backoff=0.01,
        )
        result = Authenticator.from_config(config).is_authentic(
            *signed_request(generate_identity())
        )
    assert result[1] == outcome


# --- The local service itself ---------------------------------------------------------------


def test_service_refuses_unsigned_callers(service: LocalMAuthService, me: AppIdentity) -> None:
    import requests

    answer = requests.get(f"{service.url}/mauth/v1/security_tokens/{me.app_uuid}.json", timeout=5)
    assert answer.status_code == 401
    assert "No mAuth signature" in answer.json()["errors"]["mauth"][0]


def test_service_reads_a_keys_folder_safely(tmp_path: Any, me: AppIdentity) -> None:
    caller = generate_identity()
    (tmp_path / f"{me.app_uuid}.pub").write_text(me.public_key)
    (tmp_path / f"{caller.app_uuid}.pub").write_text(caller.public_key)
    (tmp_path.parent / "secret.pub").write_text(caller.public_key)
    with LocalMAuthService(keys_dir=tmp_path) as service:
        source = LocalKeySource(service.config_for(me))
        source.get_public_key(caller.app_uuid)
        with pytest.raises(InauthenticError):
            source.get_public_key("../secret")


def test_service_command_line(tmp_path: Any, me: AppIdentity) -> None:
    from .servers import running_command

    (tmp_path / f"{me.app_uuid}.pub").write_text(me.public_key)
    port = closed_port()
    argv = ["-m", "mauth_client.testing", "--keys", str(tmp_path), "--port", str(port)]
    with running_command(argv, ready=f"http://127.0.0.1:{port}"):
        config = Config(
            app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=f"http://127.0.0.1:{port}"
        )
        LocalKeySource(config).get_public_key(me.app_uuid)


def test_service_command_line_bad_folder(tmp_path: Any) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mauth_client.testing", "--keys", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "is not a folder" in done.stderr and "Traceback" not in done.stderr


def test_key_cache_is_bounded(service: LocalMAuthService, me: AppIdentity) -> None:
    callers = [service.new_app() for _ in range(3)]
    source = LocalKeySource(service.config_for(me, key_cache_size=2))
    for caller in callers:
        source.get_public_key(caller.app_uuid)
    assert len(source._keys) == 2
    source.get_public_key(callers[0].app_uuid)  # the oldest was evicted: fetched again
    assert service.calls("security_tokens", callers[0].app_uuid) == 2
    assert service.calls("security_tokens", callers[2].app_uuid) == 1


@pytest.fixture
def upstream_env(
    service: LocalMAuthService, me: AppIdentity, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Configure the process the way upstream users do: through the environment."""
    from mauth_client import authenticator as module

    for name, value in {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_URL": service.url,
        "MAUTH_MODE": "local",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("V2_ONLY_AUTHENTICATE", raising=False)
    module.reset_default_authenticator()
    yield
    module.reset_default_authenticator()


def test_upstream_remote_authenticator_even_in_local_mode(
    upstream_env: None, service: LocalMAuthService
) -> None:
    from mauth_client.authenticator import RemoteAuthenticator

    caller = service.new_app()
    signable, signed = signed_request(caller)
    assert RemoteAuthenticator(signable, signed, None).is_authentic() == (True, 200, "")
    assert service.calls("authentication_tickets") == 1
    tampered = RequestSignable(method="POST", url="/orders?x=1", body=b"nope")
    assert RemoteAuthenticator(tampered, signed, None).is_authentic()[:2] == (False, 401)


def test_upstream_local_authenticator_against_the_service(
    upstream_env: None, service: LocalMAuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mauth_client.authenticator import LocalAuthenticator

    caller = service.new_app()
    signable, signed = signed_request(caller, versions="v1")
    assert LocalAuthenticator(signable, signed, None).is_authentic() == (True, 200, "")
    # Upstream test suites switch V2-only on by assigning the class attribute.
    monkeypatch.setattr(Config, "V2_ONLY_AUTHENTICATE", True, raising=False)
    ok, status, message = LocalAuthenticator(signable, signed, None).is_authentic()
    assert (ok, status) == (False, 401) and "requires mAuth v2" in message


def test_upstream_authenticator_with_broken_configuration(
    upstream_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mauth_client.authenticator import LocalAuthenticator

    monkeypatch.setenv("MAUTH_MODE", "sideways")
    signable, signed = signed_request(generate_identity())
    ok, status, message = LocalAuthenticator(signable, signed, None).is_authentic()
    assert (ok, status) == (False, 500) and "MAUTH_MODE" in message
