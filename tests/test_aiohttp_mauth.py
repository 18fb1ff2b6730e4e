"""aiohttp: the client middleware against real servers, the web middleware in a real
aiohttp server (AppRunner/TCPSite on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from mauth_client.aiohttp_mauth import (
    APP_UUID,
    PROTOCOL_VERSION,
    MAuthClientMiddleware,
    MAuthWebMiddleware,
)
from mauth_client.exceptions import BodyReadError, InauthenticError
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.server import RequestGuard
from mauth_client.signed import Signed
from mauth_client.testing import AppIdentity, LocalMAuthService

from .async_servers import aiohttp_server, tasks_of


async def echo(request: web.Request) -> web.Response:
    body = await request.read()  # the middleware read it first: aiohttp's cached copy
    text = await request.text()
    return web.json_response(
        {
            "app_uuid": request.get(APP_UUID),
            "version": request.get(PROTOCOL_VERSION),
            "size": len(body),
            "text_size": len(text.encode()),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length": request.headers.get("Content-Length"),
            "chunked": request.headers.get("Transfer-Encoding"),
            "path": request.path,
        }
    )


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"streamed")
    return response


def make_app(middleware: MAuthWebMiddleware, **options: Any) -> web.Application:
    app = web.Application(middlewares=[middleware], **options)
    app.router.add_get("/stream", streamed)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
def server(service: LocalMAuthService, me: AppIdentity) -> Iterator[tuple[str, web.Application]]:
    middleware = MAuthWebMiddleware(
        exempt={"/app_status", "/public/*"}, config=service.config_for(me), sign_response=True
    )
    app = make_app(middleware, client_max_size=64 * 1024 * 1024)
    with aiohttp_server(app) as base:
        yield base, app


def session(caller: AppIdentity, versions: str = "v1,v2", **options: Any) -> aiohttp.ClientSession:
    middleware = MAuthClientMiddleware(caller.app_uuid, caller.private_key, versions, **options)
    return aiohttp.ClientSession(middlewares=(middleware,))


@pytest.mark.parametrize(("versions", "expected"), [("v1", 1), ("v2", 2), ("v1,v2", 2)])
def test_signed_round_trip(
    server: tuple[str, web.Application], caller: AppIdentity, versions: str, expected: int
) -> None:
    base, _ = server

    async def run() -> tuple[int, Any]:
        async with (
            session(caller, versions) as client,
            client.post(f"{base}/orders/caf%C3%A9?b=2&a=1", json={"é": 1}) as answer,
        ):
            return answer.status, await answer.json()

    status, seen = asyncio.run(run())
    assert status == 200, seen
    assert seen["app_uuid"] == caller.app_uuid and seen["version"] == expected
    assert seen["size"] == seen["text_size"] == len(b'{"\\u00e9": 1}')


@pytest.mark.parametrize("chunks", [3, 80])  # 192 KiB in memory, 5 MiB through a file
def test_streamed_bodies_are_spooled_and_sent_sized(
    server: tuple[str, web.Application], caller: AppIdentity, chunks: int
) -> None:
    base, _ = server

    async def body() -> AsyncIterator[bytes]:
        for n in range(chunks):
            yield bytes([n % 251]) * 65536

    async def run() -> Any:
        async with session(caller) as client, client.put(f"{base}/up", data=body()) as answer:
            assert answer.status == 200, await answer.text()
            return await answer.json()

    seen = asyncio.run(run())
    expected = hashlib.sha256(b"".join(bytes([n % 251]) * 65536 for n in range(chunks)))
    assert seen["sha256"] == expected.hexdigest()
    assert seen["content_length"] == str(chunks * 65536) and seen["chunked"] is None
    assert seen["app_uuid"] == caller.app_uuid


def test_multipart_and_file_bodies(
    server: tuple[str, web.Application], caller: AppIdentity, tmp_path: Any
) -> None:
    base, _ = server
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x07" * 3_000_000)

    async def run() -> list[tuple[int, Any]]:
        results = []
        async with session(caller) as client:
            form = aiohttp.FormData()
            form.add_field("a", "b")
            form.add_field("f", b"\x00" * 5000, filename="f.bin")
            async with client.post(f"{base}/form", data=form) as answer:
                results.append((answer.status, await answer.json()))
            with path.open("rb") as stream:
                async with client.post(f"{base}/file", data=stream) as answer:
                    results.append((answer.status, await answer.json()))
        return results

    (form_status, form_seen), (file_status, file_seen) = asyncio.run(run())
    assert form_status == 200 and form_seen["app_uuid"] == caller.app_uuid
    assert file_status == 200 and file_seen["size"] == 3_000_000
    assert file_seen["sha256"] == hashlib.sha256(b"\x07" * 3_000_000).hexdigest()


def test_failing_body_raises_body_read_error(
    server: tuple[str, web.Application], caller: AppIdentity
) -> None:
    base, _ = server

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (2 * 1024 * 1024)
        raise OSError("disk gone")

    async def run() -> None:
        async with session(caller) as client:
            await client.post(f"{base}/up", data=broken())

    with pytest.raises(BodyReadError, match="OSError"):
        asyncio.run(run())


def test_responses_are_signed_and_authenticated(
    server: tuple[str, web.Application],
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    base, _ = server
    config = service.config_for(caller)

    async def run() -> tuple[Any, Any]:
        async with session(caller, "v2", authenticate_responses=True, config=config) as client:
            async with client.get(f"{base}/x") as answer:
                good = (answer.status, answer.mauth_app_uuid, (await answer.json())["size"])  # type: ignore[attr-defined]
            # A refusal is signed too, in the version the request came with.
            async with aiohttp.ClientSession() as plain, plain.get(f"{base}/x") as answer:
                refusal = (answer.status, Signed.from_headers(answer.headers).protocol_version())
        return good, refusal

    good, refusal = asyncio.run(run())
    assert good == (200, me.app_uuid, 0)
    # Exempt paths are not signed (as with Flask's exempt routes).
    assert "mcc-authentication" not in httpx.get(f"{base}/app_status", timeout=10).headers
    assert refusal[0] == 401 and refusal[1] is not None


def test_unsigned_response_raises(service: LocalMAuthService, caller: AppIdentity) -> None:
    app = web.Application()

    async def unsigned(request: web.Request) -> web.Response:
        return web.Response(body=b"not signed")

    app.router.add_get("/", unsigned)
    config = service.config_for(caller)

    async def run() -> None:
        async with session(caller, authenticate_responses=True, config=config) as client:
            await client.get(f"{base}/")

    with aiohttp_server(app) as base, pytest.raises(InauthenticError, match="No mAuth signature"):
        asyncio.run(run())


def test_streamed_response_goes_unsigned_with_a_warning(
    server: tuple[str, web.Application], caller: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = server
    answer = httpx.get(
        f"{base}/stream", auth=MAuthHttpx(caller.app_uuid, caller.private_key), timeout=10
    )
    assert answer.status_code == 200 and answer.content == b"streamed"
    assert "mcc-authentication" not in answer.headers
    assert "streamed response cannot be signed" in caplog.text


def test_refusals_exempt_and_head(server: tuple[str, web.Application]) -> None:
    base, _ = server
    unsigned = httpx.post(f"{base}/x", content=b"abc", timeout=10)
    assert unsigned.status_code == 401
    assert unsigned.headers["content-type"].startswith("application/json")
    assert "No mAuth signature" in unsigned.json()["errors"]["mauth"][0]
    head = httpx.head(f"{base}/x", timeout=10)
    assert head.status_code == 401 and head.content == b""
    assert httpx.get(f"{base}/app_status", timeout=10).json()["app_uuid"] is None
    assert httpx.get(f"{base}/public/a/b", timeout=10).status_code == 200
    assert httpx.get(f"{base}/publicity", timeout=10).status_code == 401  # not under /public/
    assert httpx.get(f"{base}/app_status/x", timeout=10).status_code == 401  # exact only


def test_should_authenticate_and_allow_list(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    other = service.new_app()
    middleware = MAuthWebMiddleware(
        config=service.config_for(me),
        app_uuids={other.app_uuid},
        should_authenticate=lambda request: request.method != "OPTIONS",
    )
    with aiohttp_server(make_app(middleware)) as base:
        assert httpx.options(f"{base}/x", timeout=10).status_code == 200
        refused = httpx.get(
            f"{base}/x", auth=MAuthHttpx(caller.app_uuid, caller.private_key), timeout=10
        )
        allowed = httpx.get(
            f"{base}/x", auth=MAuthHttpx(other.app_uuid, other.private_key), timeout=10
        )
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": {"mauth": [f"app {caller.app_uuid} is not allowed to call this endpoint"]}
    }
    assert allowed.status_code == 200 and allowed.json()["app_uuid"] == other.app_uuid


def test_the_allow_list_holds_with_a_shared_guard(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """``app_uuids=`` beside ``guard=`` used to be dropped: every authentic app got in."""
    other = service.new_app()
    guard = RequestGuard(config=service.config_for(me))
    middleware = MAuthWebMiddleware(guard=guard, app_uuids={other.app_uuid})
    with aiohttp_server(make_app(middleware)) as base:
        refused = httpx.get(
            f"{base}/x", auth=MAuthHttpx(caller.app_uuid, caller.private_key), timeout=10
        )
        allowed = httpx.get(
            f"{base}/x", auth=MAuthHttpx(other.app_uuid, other.private_key), timeout=10
        )
    assert (refused.status_code, allowed.status_code) == (403, 200)


def test_body_over_client_max_size_is_413_json(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    middleware = MAuthWebMiddleware(config=service.config_for(me))
    with aiohttp_server(make_app(middleware, client_max_size=1000)) as base:
        answer = httpx.post(
            f"{base}/x",
            content=b"x" * 5000,
            auth=MAuthHttpx(caller.app_uuid, caller.private_key),
            timeout=10,
        )
    assert answer.status_code == 413
    assert "larger than this server accepts" in answer.json()["errors"]["mauth"][0]


def test_service_down_is_500(me: AppIdentity, caller: AppIdentity) -> None:
    with LocalMAuthService() as service:
        config = service.config_for(me, retry_backoff=0.01)
    with aiohttp_server(make_app(MAuthWebMiddleware(config=config))) as base:
        answer = httpx.get(
            f"{base}/x", auth=MAuthHttpx(caller.app_uuid, caller.private_key), timeout=30
        )
    assert answer.status_code == 500
    assert answer.json()["errors"]["mauth"]


def test_slow_key_service_delays_only_the_caller_that_needs_it(
    me: AppIdentity, caller: AppIdentity
) -> None:
    with LocalMAuthService(latency=1.0) as service:
        service.add_app(me.app_uuid, me.public_key)
        service.add_app(caller.app_uuid, caller.public_key)
        late = service.new_app()
        with aiohttp_server(make_app(MAuthWebMiddleware(config=service.config_for(me)))) as base:
            cached = httpx.Client(auth=MAuthHttpx(caller.app_uuid, caller.private_key), timeout=20)
            assert cached.get(f"{base}/warm").status_code == 200  # caches the key (1 s)

            async def run() -> tuple[float, int, int]:
                async with session(late) as client:
                    slow = asyncio.create_task(client.get(f"{base}/late"))
                    await asyncio.sleep(0.3)
                    started = time.monotonic()
                    fast = await asyncio.to_thread(cached.get, f"{base}/fast")
                    elapsed = time.monotonic() - started
                    late_answer = await slow
                    return elapsed, fast.status_code, late_answer.status

            elapsed, fast_status, late_status = asyncio.run(run())
            cached.close()
    assert (fast_status, late_status) == (200, 200)
    assert elapsed < 0.7, elapsed


def test_client_disconnect_during_the_body_leaves_no_task(
    server: tuple[str, web.Application], caller: AppIdentity
) -> None:
    from mauth_client.signable import RequestSignable
    from mauth_client.signer import Signer

    base, app = server
    host, port = base.removeprefix("http://").split(":")
    # Signed, so the checks before the body pass and the middleware reads it.
    signed = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/x", body=b"x" * 100000)
    )
    head = "".join(f"{name}: {value}\r\n" for name, value in signed.items()).encode()
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n"
                + head
                + b"\r\n"
                + b"x" * 1000
            )
            time.sleep(0.1)  # the middleware is now waiting in request.read()
    deadline = time.monotonic() + 10
    while tasks_of(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tasks_of(app) == []
    assert httpx.get(f"{base}/app_status", timeout=10).status_code == 200  # still serving


def test_cancelled_upload_leaves_no_task_or_spool_file(
    server: tuple[str, web.Application], caller: AppIdentity
) -> None:
    import gc
    import os

    base, _ = server

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def run() -> tuple[list[Any], int]:
        begun = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            for _ in range(1000):
                yield b"y" * (512 * 1024)
                begun.set()
                await asyncio.sleep(0.01)

        async with session(caller) as client:
            before = open_fds()
            task = asyncio.create_task(client.post(f"{base}/up", data=slow()))
            await begun.wait()
            await asyncio.sleep(0.1)  # a few MiB in: the spool file is open
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gc.collect()
            # The body's own async generator, left unfinished, is closed by asyncio's finalizer
            # task on the next turns of the loop: let it run, then nothing may be pending.
            await asyncio.sleep(0.05)
            left_fds = open_fds() - before
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()], left_fds

    tasks, left_fds = asyncio.run(run())
    assert tasks == []
    assert left_fds <= 0


def test_redirects_are_signed_afresh_on_the_same_origin_only(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """A hop to the first request's origin is signed for its own path (the protected
    target authenticates it); a hop to another origin carries no MAuth header."""
    seen_elsewhere: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen_elsewhere.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"elsewhere": True})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", record)
    with aiohttp_server(other) as elsewhere:

        async def redirect(request: web.Request) -> web.Response:
            await request.read()
            target = "/target" if request.path == "/same" else f"{elsewhere}/target"
            raise web.HTTPTemporaryRedirect(target)

        middleware = MAuthWebMiddleware(exempt={"/same", "/away"}, config=service.config_for(me))
        app = make_app(middleware)
        app.router.add_post("/same", redirect)
        app.router.add_post("/away", redirect)
        with aiohttp_server(app) as base:

            async def run() -> tuple[Any, Any]:
                async with session(caller, "v1,v2") as client:
                    async with client.post(f"{base}/same", data=b"payload") as answer:
                        same = (answer.status, await answer.json(), len(answer.history))
                    async with client.post(f"{base}/away", data=b"payload") as answer:
                        away = (answer.status, await answer.json())
                return same, away

            same, away = asyncio.run(run())
    assert same[0] == 200 and same[2] == 1
    assert same[1]["app_uuid"] == caller.app_uuid and same[1]["path"] == "/target"
    assert away == (200, {"elsewhere": True})
    (headers,) = seen_elsewhere
    assert not {"mcc-authentication", "mcc-time", "x-mws-authentication", "x-mws-time"} & set(
        headers
    ), headers


def test_response_app_uuids_pins_the_signer(
    server: tuple[str, web.Application],
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
) -> None:
    base, _ = server
    config = service.config_for(caller)

    async def call(pinned: set[str]) -> Any:
        async with (
            session(caller, response_app_uuids=pinned, config=config) as client,
            client.get(f"{base}/x") as answer,
        ):
            return answer.mauth_app_uuid  # type: ignore[attr-defined]

    assert asyncio.run(call({me.app_uuid})) == me.app_uuid
    with pytest.raises(InauthenticError, match="response_app_uuids"):
        asyncio.run(call({service.new_app().app_uuid}))


def test_a_redirect_chain_is_judged_against_its_first_origin(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """Attack: A -> 302 to B -> 302 to B/x. Every hop after A is on another origin than
    the first request, so B must see no MAuth header at any hop. A redirect that is not
    followed does not hold back the next request to another origin: it is signed. (The
    middleware cannot tell whether aiohttp follows a redirect, so a fresh request to the
    redirect's own target origin right after an unfollowed one goes unsigned: the safe
    side.)"""
    seen: list[tuple[str, bool]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path, "mcc-authentication" in {k.lower() for k in request.headers}))
        if request.path == "/hop":
            raise web.HTTPFound("/x")
        return web.json_response({"ok": True})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", record)
    with aiohttp_server(other) as elsewhere:

        async def away(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{elsewhere}/hop")

        app = make_app(MAuthWebMiddleware(exempt={"/away"}, config=service.config_for(me)))
        app.router.add_get("/away", away)
        with aiohttp_server(app) as base:

            async def run() -> None:
                async with session(caller, "v2") as client:
                    async with client.get(f"{base}/away") as answer:
                        assert answer.status == 200 and len(answer.history) == 2
                    async with client.get(f"{base}/away", allow_redirects=False) as answer:
                        assert answer.status == 302
                    async with client.get(f"{base}/protected") as answer:
                        assert answer.status == 200, await answer.text()
                        assert (await answer.json())["app_uuid"] == caller.app_uuid

            asyncio.run(run())
    assert seen == [("/hop", False), ("/x", False)]
