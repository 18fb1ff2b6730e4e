"""Issue 11 item 2: the async key fetch (``LocalKeySource.aget_public_key`` on
``httpx.AsyncClient``), one cache and one single-flight shared with threads.

Real local MAuth service (with ``latency`` to hold a fetch open), real event loops,
real threads, real ``os.fork()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from typing import Any

import pytest

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import InauthenticError
from mauth_client.key_source import LocalKeySource
from mauth_client.keys import public_key_pem
from mauth_client.server import RequestGuard
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity


def pem(key: Any) -> str:
    return public_key_pem(key).strip()


@pytest.fixture
def slow() -> Any:
    """A local MAuth service answering after 0.5 s, and the identity that calls it."""
    with LocalMAuthService(latency=0.5) as service:
        yield service, service.new_app()


def test_twenty_tasks_for_one_new_app_cause_one_fetch(slow: Any) -> None:
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))

    async def run() -> list[Any]:
        return await asyncio.gather(*(source.aget_public_key(wanted.app_uuid) for _ in range(20)))

    keys = asyncio.run(run())
    assert {pem(key) for key in keys} == {wanted.public_key.strip()}
    assert service.calls("security_tokens", wanted.app_uuid) == 1
    assert source.fetch_count == 1
    # Cached now: a blocking caller gets it without a fetch.
    assert pem(source.get_public_key(wanted.app_uuid)) == wanted.public_key.strip()
    assert service.calls("security_tokens", wanted.app_uuid) == 1


@pytest.mark.parametrize("first", ["thread", "task"])
def test_a_thread_and_a_task_asking_at_once_cause_one_fetch(slow: Any, first: str) -> None:
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))
    results: dict[str, str] = {}

    def in_thread() -> None:
        results["thread"] = pem(source.get_public_key(wanted.app_uuid))

    async def run() -> None:
        thread = threading.Thread(target=in_thread)
        if first == "thread":
            thread.start()
            await asyncio.sleep(0.15)  # the thread's fetch is under way (0.5 s)
            results["task"] = pem(await source.aget_public_key(wanted.app_uuid))
        else:
            waiter = asyncio.ensure_future(source.aget_public_key(wanted.app_uuid))
            await asyncio.sleep(0.15)  # the task's fetch is under way
            thread.start()
            results["task"] = pem(await waiter)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)

    asyncio.run(run())
    assert results == {"thread": wanted.public_key.strip(), "task": wanted.public_key.strip()}
    assert service.calls("security_tokens", wanted.app_uuid) == 1


def test_a_cancelled_waiter_does_not_cancel_the_fetch_of_the_others(slow: Any) -> None:
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))

    async def run() -> tuple[str, list[asyncio.Task[Any]]]:
        leader = asyncio.ensure_future(source.aget_public_key(wanted.app_uuid))
        follower = asyncio.ensure_future(source.aget_public_key(wanted.app_uuid))
        await asyncio.sleep(0.1)
        leader.cancel()  # the task that started the fetch: its client went away
        with pytest.raises(asyncio.CancelledError):
            await leader
        key = pem(await asyncio.wait_for(follower, 10))
        await asyncio.sleep(0)  # let the fetch task's last callbacks run
        return key, [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    key, left = asyncio.run(run())
    assert key == wanted.public_key.strip()
    assert left == []  # no fetch task, no waiter left behind
    assert service.calls("security_tokens", wanted.app_uuid) == 1


def test_cancelling_every_waiter_leaves_nothing_stuck(slow: Any) -> None:
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))

    async def run() -> None:
        waiters = [asyncio.ensure_future(source.aget_public_key(wanted.app_uuid)) for _ in range(5)]
        await asyncio.sleep(0.1)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        # The fetch goes on for whoever asks next, and lands in the cache.
        key = await asyncio.wait_for(source.aget_public_key(wanted.app_uuid), 10)
        assert pem(key) == wanted.public_key.strip()

    asyncio.run(run())
    assert service.calls("security_tokens", wanted.app_uuid) == 1


def test_a_loop_closing_mid_fetch_leaves_no_in_flight_entry(slow: Any) -> None:
    """asyncio.run() returning cancels the fetch task: a later caller (here a thread,
    with no loop at all) fetches afresh instead of waiting on a fetch nobody runs."""
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))

    async def start_and_leave() -> None:
        waiter = asyncio.ensure_future(source.aget_public_key(wanted.app_uuid))
        await asyncio.sleep(0.1)
        waiter.cancel()

    asyncio.run(start_and_leave())
    started = time.monotonic()
    key = source.get_public_key(wanted.app_uuid)
    assert pem(key) == wanted.public_key.strip()
    assert time.monotonic() - started < source._wait_limit()  # not the followers' timeout
    assert service.calls("security_tokens", wanted.app_uuid) == 2  # the first was abandoned


def test_unknown_app_is_cached_negatively_by_the_async_path(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    stranger = generate_identity()
    source = LocalKeySource(service.config_for(me))

    async def ask() -> None:
        await source.aget_public_key(stranger.app_uuid)

    for _ in range(2):
        with pytest.raises(InauthenticError, match="not known"):
            asyncio.run(ask())
    with pytest.raises(InauthenticError, match="not known"):
        source.get_public_key(stranger.app_uuid)  # the blocking path sees the same cache
    assert service.calls("security_tokens", stranger.app_uuid) == 1


def test_max_age_zero_is_not_cached_by_the_async_path(me: AppIdentity) -> None:
    with LocalMAuthService(max_age=0) as service:
        service.add_app(me.app_uuid, me.public_key)
        wanted = service.new_app()
        source = LocalKeySource(service.config_for(me))

        async def twice() -> None:
            for _ in range(2):
                await source.aget_public_key(wanted.app_uuid)

        asyncio.run(twice())
        assert service.calls("security_tokens", wanted.app_uuid) == 2


def test_a_slow_key_service_delays_only_the_requests_that_need_it(me: AppIdentity) -> None:
    """A cached caller's request is answered while 20 requests wait on a 2 s fetch,
    all on one event loop and without worker threads."""
    with LocalMAuthService(latency=2.0) as service:
        service.add_app(me.app_uuid, me.public_key)
        cached, late = generate_identity(), generate_identity()
        service.add_app(cached.app_uuid, cached.public_key)
        service.add_app(late.app_uuid, late.public_key)
        guard = RequestGuard(Authenticator.from_config(service.config_for(me)))
        source = guard.authenticator.key_source
        assert source is not None
        source.get_public_key(cached.app_uuid)  # warm (2 s)

        def headers(identity: AppIdentity) -> dict[str, str]:
            return Signer(identity.app_uuid, identity.private_key, "v2").signed_headers(
                RequestSignable(method="POST", url="/p", body=b"x")
            )

        from mauth_client.async_guard import check_request

        order: list[str] = []

        async def request(identity: AppIdentity, name: str) -> int:
            outcome = await check_request(guard, "POST", "/p", "", headers(identity), b"x")
            order.append(name)
            return outcome.status

        async def run() -> list[int]:
            waiting = [asyncio.ensure_future(request(late, "late")) for _ in range(20)]
            await asyncio.sleep(0.2)  # all 20 are waiting on the fetch now
            assert await request(cached, "cached") == 200
            return await asyncio.gather(*waiting)

        statuses = asyncio.run(run())
    assert statuses == [200] * 20
    assert order[0] == "cached"  # answered while the fetch was still under way
    assert service.calls("security_tokens", late.app_uuid) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_fork_during_an_async_fetch_leaves_the_child_free(slow: Any) -> None:
    """The parent forks while a task of its loop (in another thread) fetches a key:
    the child must fetch for itself, not wait for the parent's loop."""
    service, me = slow
    wanted = service.new_app()
    source = LocalKeySource(service.config_for(me))
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        pending = asyncio.run_coroutine_threadsafe(source.aget_public_key(wanted.app_uuid), loop)
        time.sleep(0.15)  # the parent's fetch is under way
        pid = os.fork()
        if pid == 0:  # the child: only this thread exists, the parent's loop does not run
            code = 1
            try:
                key = asyncio.run(asyncio.wait_for(source.aget_public_key(wanted.app_uuid), 5))
                code = 0 if pem(key) == wanted.public_key.strip() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert pem(pending.result(10)) == wanted.public_key.strip()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert service.calls("security_tokens", wanted.app_uuid) == 2  # parent's and child's


# --- No worker thread: the adapters and the clients' response checks -----------------------


class NoThreads(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails the test if anything is sent to a worker thread."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("work was sent to a worker thread")


def without_threads(coroutine: Any, *, threads: bool = False) -> Any:
    async def run() -> Any:
        if not threads:
            asyncio.get_running_loop().set_default_executor(NoThreads())
        return await coroutine

    return asyncio.run(run())


def asgi_post(app: Any, headers: dict[str, str], body: bytes, *, threads: bool = False) -> int:
    """POST ``body`` to ``/p`` of the ASGI ``app`` with ``headers``; the status."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/p",
        "raw_path": b"/p",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    without_threads(app(scope, receive, send), threads=threads)
    return int(sent[0]["status"])


def asgi_call(
    app: Any, identity: AppIdentity, body: bytes, *, tamper: bool = False, threads: bool = False
) -> int:
    headers = Signer(identity.app_uuid, identity.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/p", body=body)
    )
    return asgi_post(app, headers, body + (b"!" if tamper else b""), threads=threads)


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_asgi_middleware_fetches_and_asks_tickets_without_a_thread(
    service: LocalMAuthService, me: AppIdentity, mode: str
) -> None:
    """The first request of a new app: its key (local mode) or its ticket (remote mode)
    on httpx.AsyncClient; a default executor that refuses work proves no thread hop
    (the private key is resolved before, as it is PEM here and needs no thread)."""
    from mauth_client.middlewares import MAuthASGIMiddleware

    caller = service.new_app()
    app = MAuthASGIMiddleware(ok_app, config=service.config_for(me, mauth_mode=mode))
    kind = "security_tokens" if mode == "local" else "authentication_tickets"
    # The async client resolves its key in a thread once (KMS may block): done here.
    asgi_call(app, caller, b"warm", threads=True)
    service.reset_counters()
    newcomer = service.new_app()
    assert asgi_call(app, newcomer, b"hello") == 200
    assert asgi_call(app, newcomer, b"hello", tamper=True) == 401
    assert service.calls(kind) == (1 if mode == "local" else 2)


def test_remote_mode_falls_back_to_v1_through_async_tickets(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    """V2 tampered, V1 good (no query): two tickets, both on the loop, the V1 one wins."""
    from mauth_client.middlewares import MAuthASGIMiddleware

    caller = service.new_app()
    app = MAuthASGIMiddleware(ok_app, config=service.config_for(me, mauth_mode="remote"))
    asgi_call(app, caller, b"warm", threads=True)
    signer = Signer(caller.app_uuid, caller.private_key, "v1,v2")
    both = signer.signed_headers(RequestSignable(method="POST", url="/p", body=b"x"))
    other = signer.signed_headers(RequestSignable(method="POST", url="/p", body=b"y"))
    both["MCC-Authentication"] = other["MCC-Authentication"]  # well-formed, for another body
    both["MCC-Time"] = other["MCC-Time"]
    service.reset_counters()
    assert asgi_post(app, both, b"x") == 200
    assert service.calls("authentication_tickets") == 2


def test_httpx_async_client_checks_responses_without_a_thread(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    """MAuthHttpx in an httpx.AsyncClient: the responder's key is fetched on the loop."""
    import httpx

    from mauth_client.httpx_mauth import MAuthHttpx

    responder = service.new_app()
    body = b'{"ok": true}'
    signed = Signer(responder.app_uuid, responder.private_key, "v2")

    def handler(request: httpx.Request) -> httpx.Response:
        from mauth_client.signable import ResponseSignable

        return httpx.Response(
            200, content=body, headers=signed.signed_headers(ResponseSignable(200, body))
        )

    auth = MAuthHttpx(
        me.app_uuid,
        me.private_key,
        "v2",
        config=service.config_for(me),
        authenticate_responses=True,
    )

    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await client.get("http://127.0.0.1/anything", auth=auth)

    asyncio.run(go())  # warm: the async key-service client resolves its key once
    service.reset_counters()
    responder = service.new_app()
    signed = Signer(responder.app_uuid, responder.private_key, "v2")
    answer = without_threads(go())
    assert answer.extensions["mauth_app_uuid"] == responder.app_uuid
    assert service.calls("security_tokens", responder.app_uuid) == 1


def test_a_v1_fallback_from_another_app_never_fetches_on_the_loop(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    """V2 from a cached app but for another body, V1 (no query: a fallback is allowed)
    from an app not seen yet: the V1 key is fetched without blocking the loop, and
    without a thread."""
    from mauth_client.key_holder import KeyHolderSource
    from mauth_client.middlewares import MAuthASGIMiddleware

    class NoBlockingFetch(LocalKeySource):
        def _fetch(self, app_uuid: str) -> Any:
            raise AssertionError(f"a blocking fetch of {app_uuid} on the event loop")

    cached, newcomer = service.new_app(), service.new_app()
    source = NoBlockingFetch(service.config_for(me))
    app = MAuthASGIMiddleware(ok_app, authenticator=Authenticator(KeyHolderSource(source)))
    asgi_call(app, cached, b"warm", threads=True)  # cached's key, and the client's key resolved
    v2 = Signer(cached.app_uuid, cached.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/p", body=b"something else")
    )
    v1 = Signer(newcomer.app_uuid, newcomer.private_key, "v1").signed_headers(
        RequestSignable(method="POST", url="/p", body=b"x")
    )
    assert asgi_post(app, {**v2, **v1}, b"x") == 200  # V1 from the newcomer is authentic
    assert service.calls("security_tokens", newcomer.app_uuid) == 1
