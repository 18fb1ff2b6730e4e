"""Issue 10 item 2 for the async adapters: the FastAPI dependency (under uvicorn) and
the aiohttp middleware answer 401/413 from the headers alone, before the body.

As in test_body_unread: headers and 1 MiB of a declared 200 MB body go to a real
server, the answer must come before the rest is sent. Reading the body first would
wait for the 199 MB never sent (the aiohttp server's ``client_max_size`` is raised
so that it would wait rather than refuse at once).
"""

# No "from __future__ import annotations": FastAPI reads the route's Annotated at runtime.

import json
from typing import Annotated, Any

from aiohttp import web
from fastapi import Depends, FastAPI, Request

from mauth_client.aiohttp_mauth import MAuthWebMiddleware
from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install
from mauth_client.testing import AppIdentity, LocalMAuthService

from ..async_servers import aiohttp_server
from ..servers import uvicorn_server
from .rawhttp import MIB, send_partial
from .test_body_unread import counting_asgi, hostile_headers, signed_headers


def fastapi_app(required: MAuthRequired, received: list[int], reached: list[str]) -> Any:
    app = FastAPI()
    install(app)

    @app.post("/upload")
    async def upload(
        request: Request, caller: Annotated[MAuthCaller, Depends(required)]
    ) -> dict[str, Any]:
        reached.append(caller.app_uuid)
        return {"size": len(await request.body())}

    return counting_asgi(app, received)


def test_fastapi_dependency_answers_401_before_the_body(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    received: list[int] = []
    reached: list[str] = []
    required = MAuthRequired(config=service.config_for(me))
    with uvicorn_server(fastapi_app(required, received, reached)) as base:
        for name, headers in hostile_headers(service).items():
            answer = send_partial(base, "POST", "/upload", headers, timeout=10)
            assert answer.status == 401, (name, answer.body)
            assert json.loads(answer.body)["errors"]["mauth"], name
            assert answer.sent <= MIB
            assert received == [], f"{name}: the dependency received {received}"
    assert reached == []


def test_fastapi_dependency_413_by_content_length(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    received: list[int] = []
    reached: list[str] = []
    required = MAuthRequired(config=service.config_for(me, max_body_size=100_000))
    headers = signed_headers(caller, "POST", "/upload")
    with uvicorn_server(fastapi_app(required, received, reached)) as base:
        answer = send_partial(base, "POST", "/upload", headers, declared=100_001, send=0)
    assert answer.status == 413, answer.body
    assert received == [] and reached == []


def aiohttp_app(middleware: MAuthWebMiddleware, reached: list[str]) -> web.Application:
    async def upload(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"size": len(await request.read())})

    # Large enough that reading the declared 200 MB would wait for it, not refuse it.
    app = web.Application(middlewares=[middleware], client_max_size=300 * 1000 * 1000)
    app.router.add_post("/upload", upload)
    return app


def test_aiohttp_middleware_answers_401_before_the_body(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    reached: list[str] = []
    middleware = MAuthWebMiddleware(config=service.config_for(me))
    with aiohttp_server(aiohttp_app(middleware, reached)) as base:
        for name, headers in hostile_headers(service).items():
            answer = send_partial(base, "POST", "/upload", headers, timeout=10)
            assert answer.status == 401, (name, answer.body)
            assert json.loads(answer.body)["errors"]["mauth"], name
            assert answer.sent <= MIB
    assert reached == []


def test_aiohttp_middleware_413_by_content_length(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    reached: list[str] = []
    middleware = MAuthWebMiddleware(config=service.config_for(me, max_body_size=100_000))
    headers = signed_headers(caller, "POST", "/upload")
    with aiohttp_server(aiohttp_app(middleware, reached)) as base:
        answer = send_partial(base, "POST", "/upload", headers, declared=100_001, send=0)
    assert answer.status == 413, answer.body
    assert reached == []
