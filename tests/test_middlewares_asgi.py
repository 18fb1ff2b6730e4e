"""The ASGI middleware on a Starlette app under uvicorn, called with httpx + MAuthHttpx."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.middlewares import MAuthASGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import uvicorn_server

STATE: dict[str, Any] = {}
STREAM_CLOSED = threading.Event()


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "app_uuid": request.scope.get("mauth.app_uuid"),
            "version": request.scope.get("mauth.protocol_version"),
            "body_len": len(body),
            "body_head": body[:8].hex(),
            "path": request.url.path,
            "query": sorted(request.query_params.multi_items()),
        }
    )


async def events(request: Request) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        try:
            for n in range(1000):
                if await request.is_disconnected():
                    STATE["saw_disconnect"] = True
                    return
                yield f"data: {n}\n\n".encode()
                await asyncio.sleep(0.05)
        finally:
            STREAM_CLOSED.set()

    return StreamingResponse(stream(), media_type="text/event-stream")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    STATE["started"] = True
    yield


def make_app(service: LocalMAuthService, me: AppIdentity, **options: Any) -> MAuthASGIMiddleware:
    app = Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=["GET", "POST", "HEAD"]),
            Route("/events", events),
        ],
        lifespan=lifespan,
    )
    return MAuthASGIMiddleware(app, config=service.config_for(me), **options)


@pytest.fixture
def url(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    STATE.clear()
    STREAM_CLOSED.clear()
    with uvicorn_server(make_app(service, me, exempt={"/echo/open"})) as base:
        yield base


@pytest.mark.parametrize(("versions", "expected"), [("v1", 1), ("v2", 2), ("v1,v2", 2)])
def test_sync_client(url: str, caller: AppIdentity, versions: str, expected: int) -> None:
    body = bytes(range(256)) * 20
    with httpx.Client(auth=MAuthHttpx(caller.app_uuid, caller.private_key, versions)) as client:
        answer = client.post(
            f"{url}/echo/caf%C3%A9?q=%E2%82%AC&x=a+b&y=/", content=body, timeout=10
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "app_uuid": caller.app_uuid,
        "version": expected,
        "body_len": len(body),
        "body_head": body[:8].hex(),
        "path": "/echo/caf\u00e9",
        "query": [["q", "\u20ac"], ["x", "a b"], ["y", "/"]],
    }
    assert STATE.get("started") is True  # the lifespan scope went through


def test_async_client(url: str, caller: AppIdentity) -> None:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(
            auth=MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
        ) as client:
            return await client.post(f"{url}/echo/x", content=b"", timeout=10)

    answer = asyncio.run(run())
    assert answer.status_code == 200, answer.text
    assert answer.json()["app_uuid"] == caller.app_uuid


def test_large_body_spooled_and_replayed(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    body = b"0123456789" * 50_000
    with (
        uvicorn_server(make_app(service, me, spool_threshold=10_000)) as base,
        httpx.Client(auth=MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")) as client,
    ):
        answer = client.post(f"{base}/echo/big", content=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_len"] == len(body)


def test_unsigned_tampered_and_head(url: str, caller: AppIdentity) -> None:
    answer = httpx.get(f"{url}/echo/x", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/json"
    assert "No mAuth signature" in answer.json()["errors"]["mauth"][0]
    head = httpx.head(f"{url}/echo/x", timeout=10)
    assert head.status_code == 401 and head.content == b""
    signed = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    request = httpx.Request("POST", f"{url}/echo/x", content=b"original")
    request.headers.update(signed._make_headers(request))
    tampered = httpx.Request("POST", f"{url}/echo/x", content=b"tampered", headers=request.headers)
    with httpx.Client() as client:
        assert client.send(tampered).status_code == 401


def test_exempt(url: str) -> None:
    assert httpx.get(f"{url}/echo/open", timeout=10).status_code == 200


def test_server_sent_events_and_client_disconnect(url: str, caller: AppIdentity) -> None:
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with (
        httpx.Client(auth=auth) as client,
        client.stream("GET", f"{url}/events", timeout=10) as answer,
    ):
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(lines) == "data: 0"
        assert next(lines) == ""
        assert next(lines) == "data: 1"
    # Leaving the block closes the connection: the app must hear about it.
    assert STREAM_CLOSED.wait(10), "the app never learnt that the client went away"


def test_websocket_and_lifespan_scopes_pass_untouched(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    reached: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope)

    middleware = MAuthASGIMiddleware(app, config=service.config_for(me))

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: dict[str, Any]) -> None:
        return None

    for kind in ("websocket", "lifespan"):
        scope = {"type": kind, "path": "/ws", "headers": []}
        asyncio.run(middleware(scope, nothing, ignore))
        assert reached[-1] is scope  # the very same scope, no MAuth keys added


def test_client_gone_before_the_body(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    # Signed, so it passes the checks that need no body and the body is awaited.
    signature = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/x", body=b"")
    )
    called: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in signature.items()],
    }
    asyncio.run(MAuthASGIMiddleware(app, config=service.config_for(me))(scope, receive, send))
    assert called == [] and sent == []


def test_slow_mauth_service_does_not_block_the_event_loop(
    me: AppIdentity, caller: AppIdentity
) -> None:
    with LocalMAuthService(latency=1.0) as service:
        service.add_app(me.app_uuid, me.public_key)
        service.add_app(caller.app_uuid, caller.public_key)
        with uvicorn_server(make_app(service, me, exempt={"/echo/open"})) as base:
            results: dict[str, float] = {}

            def signed_call() -> None:
                with httpx.Client(
                    auth=MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
                ) as client:
                    client.get(f"{base}/echo/x", timeout=20)

            thread = threading.Thread(target=signed_call)
            thread.start()
            time.sleep(0.3)  # the signed call is now waiting on the slow key fetch
            started = time.monotonic()
            assert httpx.get(f"{base}/echo/open", timeout=20).status_code == 200
            results["open"] = time.monotonic() - started
            thread.join(30)
    assert results["open"] < 0.5


def test_undecodable_raw_path_is_401(service: LocalMAuthService, me: AppIdentity) -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be reached")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/\ufffd",
        "raw_path": b"/\xff\xfe%zz",
        "query_string": b"\xff=%&",
        "headers": [(b"mcc-authentication", b"MWSV2 \xff:\xfe;"), (b"mcc-time", b"1")],
    }
    asyncio.run(MAuthASGIMiddleware(app, config=service.config_for(me))(scope, receive, send))
    assert sent[0]["status"] == 401
    assert b"errors" in sent[1]["body"]


def test_starlette_add_middleware(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    # The way FastAPI and Starlette apps install middleware: the class plus keyword options.
    app = Starlette(routes=[Route("/echo/{rest:path}", echo, methods=["GET"])])
    app.add_middleware(MAuthASGIMiddleware, config=service.config_for(me), exempt={"/echo/open"})
    with uvicorn_server(app) as base:
        assert httpx.get(f"{base}/echo/open", timeout=10).status_code == 200
        assert httpx.get(f"{base}/echo/closed", timeout=10).status_code == 401
        with httpx.Client(auth=MAuthHttpx(caller.app_uuid, caller.private_key, "v2")) as client:
            answer = client.get(f"{base}/echo/closed", timeout=10)
    assert answer.status_code == 200 and answer.json()["app_uuid"] == caller.app_uuid
