"""async_guard.check_request: on the event loop when no key lookup can block, else a thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from mauth_client.async_guard import _answers_without_io, check_request
from mauth_client.authenticator import Authenticator
from mauth_client.key_holder import KeyHolder
from mauth_client.key_source import StaticKeySource
from mauth_client.server import RequestGuard
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity


class Recording(StaticKeySource):
    def __init__(self, keys: Any) -> None:
        super().__init__(keys)
        self.threads: list[int] = []

    def get_public_key(self, app_uuid: str) -> Any:
        self.threads.append(threading.get_ident())
        return super().get_public_key(app_uuid)


def headers_for(identity: AppIdentity, body: bytes = b"x") -> list[tuple[bytes, bytes]]:
    signed = Signer(identity.app_uuid, identity.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/p", body=body)
    )
    return [(k.lower().encode(), v.encode()) for k, v in signed.items()]


def run_check(guard: RequestGuard, headers: Any) -> tuple[int, int]:
    async def go() -> tuple[int, int]:
        outcome = await check_request(guard, "POST", "/p", "", headers, b"x")
        return outcome.status, threading.get_ident()

    return asyncio.run(go())


def test_static_keys_are_checked_on_the_loop(caller: AppIdentity) -> None:
    source = Recording({caller.app_uuid: caller.public_key})
    status, loop_thread = run_check(RequestGuard(Authenticator(source)), headers_for(caller))
    assert status == 200
    assert source.threads == [loop_thread]


def test_a_cached_404_counts_as_cached(service: LocalMAuthService, me: AppIdentity) -> None:
    from mauth_client.testing import generate_identity

    stranger = generate_identity()
    guard = RequestGuard(Authenticator.from_config(service.config_for(me)))
    signed = Signed.from_headers(headers_for(stranger))
    assert not _answers_without_io(guard, signed)  # nothing known yet: a thread
    assert run_check(guard, headers_for(stranger))[0] == 401  # fetched: a 404
    assert _answers_without_io(guard, signed)  # the 404 is cached: on the loop
    calls = service.calls("security_tokens")
    assert run_check(guard, headers_for(stranger))[0] == 401
    assert service.calls("security_tokens") == calls


def test_patched_keyholder_runs_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    threads: list[int] = []

    def patched(cls: Any, app_uuid: str) -> str:
        threads.append(threading.get_ident())
        return caller.public_key

    monkeypatch.setattr(KeyHolder, "get_public_key", classmethod(patched))
    guard = RequestGuard(Authenticator.from_config(service.config_for(me)))
    status, loop_thread = run_check(guard, headers_for(caller))
    assert status == 200
    assert threads and threads[0] != loop_thread  # a patched seam may block: not on the loop


def test_unparseable_headers_still_get_the_guards_answer(caller: AppIdentity) -> None:
    guard = RequestGuard(Authenticator(StaticKeySource({})))
    status, _ = run_check(guard, [(b"mcc-authentication", b"\xff\xfe"), (b"mcc-time", b"x")])
    assert status == 401


def test_an_unknown_app_found_by_the_async_lookup_gets_no_detail_when_it_is_off() -> None:
    """The async pre-check's key lookup refuses like the blocking one: with error detail
    off the body says only "authentication failed", and the attempt is one event."""
    from mauth_client import async_guard, observability

    with LocalMAuthService() as service:
        me = service.new_app()
        stranger = generate_identity()  # never registered: the service answers 404
        config = service.config_for(me).with_overrides(error_detail=False)
        guard = RequestGuard(config=config)
        events: list[Any] = []
        unsubscribe = observability.subscribe(events.append)
        try:
            headers = dict((k.decode(), v.decode()) for k, v in headers_for(stranger))
            pre = asyncio.run(async_guard.precheck(guard, "POST", "", headers))
        finally:
            unsubscribe()
    assert (pre.status, pre.message) == (401, "authentication failed")
    attempts = [event for event in events if event.kind == "authentication"]
    assert [event.outcome for event in attempts] == ["inauthentic"]
