"""The FastAPI/Starlette dependency: FastAPI's TestClient, uvicorn on 127.0.0.1, and
direct ASGI calls for disconnects and cancellation."""

import asyncio
import threading
import time
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Form, Request
from fastapi.testclient import TestClient

from mauth_client.authenticator import Authenticator
from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.key_source import LocalKeySource
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import uvicorn_server


class RecordingKeySource(LocalKeySource):
    """The real cached key source, noting which thread each lookup ran on and how."""

    threads: list[tuple[str, int]]

    def get_public_key(self, app_uuid: str) -> Any:
        self.threads.append(("blocking", threading.get_ident()))
        return super().get_public_key(app_uuid)

    async def aget_public_key(self, app_uuid: str) -> Any:
        self.threads.append(("async", threading.get_ident()))
        return await super().aget_public_key(app_uuid)

    def cached_key(self, app_uuid: str) -> Any:
        self.threads.append(("cached", threading.get_ident()))
        return super().cached_key(app_uuid)


def make_app(required: MAuthRequired, *, with_install: bool = True) -> FastAPI:
    app = FastAPI()
    if with_install:
        install(app)
    handler_threads: list[int] = []
    app.state.handler_threads = handler_threads

    @app.post("/orders")
    async def create(
        request: Request, caller: Annotated[MAuthCaller, Depends(required)]
    ) -> dict[str, Any]:
        handler_threads.append(threading.get_ident())
        raw = await request.body()  # the dependency read it already: same bytes again
        document = await request.json()
        streamed = b"".join([chunk async for chunk in request.stream()])
        return {
            "app_uuid": caller.app_uuid,
            "version": caller.protocol_version,
            "scope_app_uuid": request.scope.get("mauth.app_uuid"),
            "raw_len": len(raw),
            "streamed_len": len(streamed),
            "json": document,
        }

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"open": "yes"}

    @app.post("/form")
    async def form(
        name: Annotated[str, Form()], caller: Annotated[MAuthCaller, Depends(required)]
    ) -> dict[str, str]:
        return {"name": name}

    return app


@pytest.fixture
def dependency(service: LocalMAuthService, me: AppIdentity) -> MAuthRequired:
    return MAuthRequired(config=service.config_for(me))


def test_handler_gets_the_caller_and_the_body_untouched(
    dependency: MAuthRequired, caller: AppIdentity
) -> None:
    client = TestClient(make_app(dependency))
    for versions, expected in (("v1", 1), ("v2", 2), ("v1,v2", 2)):
        answer = client.post(
            "/orders?x=1",
            json={"item": "é", "n": 3},
            auth=MAuthHttpx(caller.app_uuid, caller.private_key, versions),
        )
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        assert seen["app_uuid"] == seen["scope_app_uuid"] == caller.app_uuid
        assert seen["version"] == expected
        assert seen["json"] == {"item": "é", "n": 3}
        assert seen["raw_len"] == seen["streamed_len"] == len(answer.request.content)


def test_refusals_are_json_errors(dependency: MAuthRequired, caller: AppIdentity) -> None:
    client = TestClient(make_app(dependency))
    unsigned = client.post("/orders", json={})
    assert unsigned.status_code == 401
    assert unsigned.headers["content-type"] == "application/json"
    assert "No mAuth signature" in unsigned.json()["errors"]["mauth"][0]
    request = client.build_request("POST", "/orders", content=b'{"a": 1}')
    request.headers.update(MAuthHttpx(caller.app_uuid, caller.private_key)._make_headers(request))
    tampered = client.build_request("POST", "/orders", content=b'{"a": 2}', headers=request.headers)
    answer = client.send(tampered)
    assert answer.status_code == 401
    assert "does not match" in answer.json()["errors"]["mauth"][0]
    assert client.get("/public").json() == {"open": "yes"}  # routes without it stay open


def test_without_install_fastapi_answers_its_own_shape(dependency: MAuthRequired) -> None:
    answer = TestClient(make_app(dependency, with_install=False)).post("/orders", json={})
    assert answer.status_code == 401
    assert "No mAuth signature" in answer.json()["detail"]


def test_allow_list_is_403(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    other = service.new_app()
    client = TestClient(
        make_app(MAuthRequired(config=service.config_for(me), app_uuids={other.app_uuid}))
    )
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    answer = client.post("/orders", json={}, auth=auth)
    assert answer.status_code == 403
    assert answer.json() == {
        "errors": {"mauth": [f"app {caller.app_uuid} is not allowed to call this endpoint"]}
    }
    allowed = client.post("/orders", json={}, auth=MAuthHttpx(other.app_uuid, other.private_key))
    assert allowed.status_code == 200


def test_exempt_paths_get_none(service: LocalMAuthService, me: AppIdentity) -> None:
    required = MAuthRequired(config=service.config_for(me), exempt={"/health/*"})
    app = FastAPI(dependencies=[Depends(required)])
    install(app)

    @app.get("/health/live")
    async def live(caller: Annotated[MAuthCaller | None, Depends(required)]) -> Any:
        return {"caller": caller}

    @app.get("/data")
    async def data() -> Any:
        return {}

    client = TestClient(app)
    assert client.get("/health/live").json() == {"caller": None}
    assert client.get("/data").status_code == 401


def test_form_route_is_a_clear_500(dependency: MAuthRequired, caller: AppIdentity) -> None:
    answer = TestClient(make_app(dependency)).post(
        "/form", data={"name": "x"}, auth=MAuthHttpx(caller.app_uuid, caller.private_key)
    )
    assert answer.status_code == 500
    assert "MAuthASGIMiddleware" in answer.json()["errors"]["mauth"][0]


def test_cached_key_checked_on_the_loop_fetch_without_a_thread(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """Issue 11 item 2: the first request fetches the key with the async key source on
    the event loop (no worker thread); the next ones find it cached, on the loop."""
    config = service.config_for(me)
    source = RecordingKeySource(config)
    source.threads = []
    app = make_app(MAuthRequired(authenticator=Authenticator(source)))
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/orders", json={}, auth=auth).status_code == 200
    loop_threads = app.state.handler_threads
    assert len(set(loop_threads)) == 1
    loop_thread = loop_threads[0]
    hows = [how for how, _ in source.threads]
    assert hows.count("async") == 1 and "blocking" not in hows  # one async fetch
    assert hows[hows.index("async") + 1 :] == ["cached", "cached"]  # then from the cache
    assert {thread for _, thread in source.threads} == {loop_thread}  # never a worker thread
    assert service.calls("security_tokens") == 1


def test_under_uvicorn_with_a_slow_key_service(me: AppIdentity, caller: AppIdentity) -> None:
    """A request waiting on a key fetch (1 s) does not hold up a cached caller's."""
    with LocalMAuthService(latency=1.0) as service:
        service.add_app(me.app_uuid, me.public_key)
        service.add_app(caller.app_uuid, caller.public_key)
        late = service.new_app()
        required = MAuthRequired(config=service.config_for(me))
        with uvicorn_server(make_app(required)) as base:
            cached = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
            with httpx.Client(auth=cached, timeout=20) as client:
                assert client.post(f"{base}/orders", json={"warm": 1}).status_code == 200
                slow = threading.Thread(
                    target=lambda: httpx.post(
                        f"{base}/orders",
                        json={},
                        auth=MAuthHttpx(late.app_uuid, late.private_key),
                        timeout=20,
                    )
                )
                slow.start()
                time.sleep(0.3)  # the late caller's key is being fetched now
                started = time.monotonic()
                answer = client.post(f"{base}/orders", json={"n": 2})
                elapsed = time.monotonic() - started
                slow.join(20)
            unsigned = httpx.post(f"{base}/orders", json={}, timeout=20)
    assert answer.status_code == 200 and answer.json()["json"] == {"n": 2}
    assert elapsed < 0.7, elapsed
    assert unsigned.status_code == 401 and unsigned.json()["errors"]["mauth"]


# -- direct ASGI calls: disconnects and cancellation ------------------------------------


def scope_for(path: str = "/orders", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def test_client_disconnect_during_the_body_leaves_nothing_behind(
    dependency: MAuthRequired, caller: AppIdentity
) -> None:
    from mauth_client.signable import RequestSignable
    from mauth_client.signer import Signer

    app = make_app(dependency)
    sent: list[dict[str, Any]] = []
    # Signed, so the checks before the body pass and the body is read (and cut short).
    signed = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/orders", body=b'{"a": 1}')
    )
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in signed.items()]

    async def run() -> list[asyncio.Task[Any]]:
        messages = iter(
            [
                {"type": "http.request", "body": b'{"a":', "more_body": True},
                {"type": "http.disconnect"},
            ]
        )

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope_for(headers=headers), receive, send)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(run()) == []
    assert app.state.handler_threads == []  # the handler never ran
    assert sent[0]["status"] == 400  # sent into the void: the client is gone


def test_cancelled_request_during_a_key_fetch_leaves_no_task_or_lock(
    me: AppIdentity, caller: AppIdentity
) -> None:
    from mauth_client.signable import RequestSignable
    from mauth_client.signer import Signer

    with LocalMAuthService(latency=0.5) as service:
        service.add_app(me.app_uuid, me.public_key)
        service.add_app(caller.app_uuid, caller.public_key)
        required = MAuthRequired(config=service.config_for(me))
        app = make_app(required)
        body = b"{}"

        def signed_scope() -> Any:
            headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
                RequestSignable(method="POST", url="/orders", body=body)
            )
            return scope_for(
                headers=[(b"content-type", b"application/json")]
                + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            )

        async def call(sent: list[dict[str, Any]]) -> None:
            delivered = False

            async def receive() -> dict[str, Any]:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(signed_scope(), receive, send)

        async def run() -> tuple[list[Any], list[dict[str, Any]]]:
            first: list[dict[str, Any]] = []
            task = asyncio.create_task(call(first))
            await asyncio.sleep(0.1)  # now waiting on the key fetch in a worker thread
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            second: list[dict[str, Any]] = []
            await asyncio.wait_for(call(second), 10)  # the guard is not stuck
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return left, second

        left, second = asyncio.run(run())
    assert left == []
    assert second[0]["status"] == 200


def test_plain_starlette_endpoint(dependency: MAuthRequired, caller: AppIdentity) -> None:
    """Without FastAPI's injection: await the dependency in a Starlette endpoint."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> JSONResponse:
        who = await dependency(request)
        assert who is not None
        return JSONResponse({"caller": who.app_uuid, "body": (await request.json())})

    app = Starlette(routes=[Route("/s", endpoint, methods=["POST"])])
    install(app)
    client = TestClient(app)
    signed = client.post(
        "/s", json={"k": 1}, auth=MAuthHttpx(caller.app_uuid, caller.private_key, "v1")
    )
    assert signed.json() == {"caller": caller.app_uuid, "body": {"k": 1}}
    unsigned = client.post("/s", json={"k": 1})
    assert unsigned.status_code == 401 and unsigned.json()["errors"]["mauth"]
