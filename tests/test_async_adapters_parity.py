"""Bad input through every async server adapter, answered alike.

The same raw HTTP requests go over sockets to the ASGI middleware (the reference),
the FastAPI dependency (under uvicorn) and the aiohttp middleware, all real servers
on 127.0.0.1; each must answer with the same status and the same
``{"errors": {"mauth": [message]}}`` as the reference.
"""

import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from aiohttp import web
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mauth_client.aiohttp_mauth import APP_UUID, MAuthWebMiddleware
from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install
from mauth_client.middlewares import MAuthASGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity

from .async_servers import aiohttp_server
from .servers import uvicorn_server


def asgi_middleware_app(config: Any, allowed: set[str]) -> Any:
    async def echo(request: Any) -> JSONResponse:
        await request.body()
        return JSONResponse({"app_uuid": request.scope.get("mauth.app_uuid")})

    app = Starlette(routes=[Route("/{p:path}", echo, methods=["GET", "POST", "HEAD"])])
    return MAuthASGIMiddleware(app, config=config, app_uuids=allowed)


def fastapi_app(config: Any, allowed: set[str]) -> Any:
    app = FastAPI()
    install(app)
    required = MAuthRequired(config=config, app_uuids=allowed)

    @app.api_route("/{p:path}", methods=["GET", "POST", "HEAD"])
    async def echo(request: Request, caller: Annotated[MAuthCaller, Depends(required)]) -> Any:
        await request.body()
        return {"app_uuid": caller.app_uuid}

    return app


def aiohttp_app(config: Any, allowed: set[str]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"app_uuid": request[APP_UUID]})

    app = web.Application(middlewares=[MAuthWebMiddleware(config=config, app_uuids=allowed)])
    app.router.add_route("*", "/{p:.*}", echo)
    return app


ADAPTERS = ["asgi-middleware", "fastapi-dependency", "aiohttp-middleware"]


@pytest.fixture
def servers(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> Iterator[dict[str, str]]:
    config = service.config_for(me)
    allowed = {caller.app_uuid}
    with (
        uvicorn_server(asgi_middleware_app(config, allowed)) as asgi,
        uvicorn_server(fastapi_app(config, allowed)) as fast,
        aiohttp_server(aiohttp_app(config, allowed)) as aio,
    ):
        yield {"asgi-middleware": asgi, "fastapi-dependency": fast, "aiohttp-middleware": aio}


def raw_request(base: str, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send ``head`` (request line and headers, CRLF-separated, no blank line) and
    ``body`` as they are; return the status and the JSON body (None if empty)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            head
            + f"\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload) if payload else None


def signed_head(
    identity: AppIdentity, method: str, target: str, body: bytes, **attrs: Any
) -> bytes:
    headers = Signer(identity.app_uuid, identity.private_key, "v1,v2").signed_headers(
        RequestSignable(method=method, url=target, body=body), attrs or None
    )
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines).encode()


Case = Callable[[AppIdentity, AppIdentity], tuple[bytes, bytes]]

CASES: dict[str, Case] = {
    "unsigned": lambda c, s: (b"GET /x HTTP/1.1", b""),
    "unsigned HEAD": lambda c, s: (b"HEAD /x HTTP/1.1", b""),
    "garbage V2 header": lambda c, s: (
        b"GET /x HTTP/1.1\r\nMCC-Authentication: MWSV2 a:b;\r\nMCC-Time: 1",
        b"",
    ),
    "garbage V1 header": lambda c, s: (
        b"GET /x HTTP/1.1\r\nX-MWS-Authentication: MWS nocolon\r\nX-MWS-Time: 1",
        b"",
    ),
    "non-numeric time": lambda c, s: (
        re.sub(rb"(?i)(mcc-time|x-mws-time): \d+", rb"\1: soon", signed_head(c, "GET", "/x", b"")),
        b"",
    ),
    "expired signature": lambda c, s: (signed_head(c, "POST", "/x", b"abc", time=1), b"abc"),
    "tampered body": lambda c, s: (signed_head(c, "POST", "/x", b"abc"), b"abd"),
    "tampered path": lambda c, s: (
        signed_head(c, "GET", "/x", b"").replace(b"GET /x ", b"GET /y "),
        b"",
    ),
    "unknown app": lambda c, s: (signed_head(generate_identity(), "GET", "/x", b""), b""),
    "not allowed": lambda c, s: (signed_head(s, "POST", "/x", b"{}"), b"{}"),
    "allowed": lambda c, s: (signed_head(c, "POST", "/x?a=1&b=%20", b"{}"), b"{}"),
    "percent-encoded path": lambda c, s: (signed_head(c, "POST", "/caf%C3%A9/a%2Fb", b"1"), b"1"),
    "broken percent-escapes": lambda c, s: (signed_head(c, "GET", "/a%zz%?%zz&=%&==", b""), b""),
    "empty app uuid": lambda c, s: (
        b"GET /x HTTP/1.1\r\nMCC-Authentication: MWSV2 :c2ln;\r\nMCC-Time: 1",
        b"",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_async_adapter_answers_like_the_asgi_middleware(
    servers: dict[str, str], service: LocalMAuthService, caller: AppIdentity, case: str
) -> None:
    stranger = service.new_app()
    head, body = CASES[case](caller, stranger)
    answers = {name: raw_request(servers[name], head, body) for name in ADAPTERS}
    reference = answers["asgi-middleware"]
    if case in ("allowed", "percent-encoded path", "broken percent-escapes"):
        assert reference == (200, {"app_uuid": caller.app_uuid})
    elif case == "not allowed":
        assert reference[0] == 403
    elif case == "unsigned HEAD":
        assert reference == (401, None)
    else:
        assert reference[0] == 401, reference
        assert reference[1]["errors"]["mauth"][0]
    for name in ADAPTERS[1:]:
        assert normal(answers[name]) == normal(reference), (name, answers)


def normal(answer: tuple[int, Any]) -> str:
    """The answer with long numbers (a signature's age in seconds) blanked: the servers
    answer a second apart at most."""
    return re.sub(r"\d{6,}", "N", json.dumps(answer))
