"""An aiohttp.web app behind the MAuth middleware, called by a signing aiohttp client.

    python3 examples/aiohttp_app.py

The server signs its answers (``sign_response=True``) and the client checks them
(``authenticate_responses=True``). Runs as written, no configuration.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from mauth_client.aiohttp_mauth import APP_UUID, MAuthClientMiddleware, MAuthWebMiddleware
from mauth_client.testing import LocalMAuthService


async def whoami(request: web.Request) -> web.Response:
    body = await request.read()  # the middleware's read is cached: the same bytes
    return web.json_response({"caller": request[APP_UUID], "body_size": len(body)})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        # In production: MAuthWebMiddleware(...) reads APP_UUID, MAUTH_URL... from the
        # environment; config= is only for this self-contained example.
        middleware = MAuthWebMiddleware(
            exempt={"/health"}, config=service.config_for(me), sign_response=True
        )
        app = web.Application(middlewares=[middleware])
        app.router.add_post("/whoami", whoami)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            signing = MAuthClientMiddleware(
                caller.app_uuid,
                caller.private_key,
                "v1,v2",
                authenticate_responses=True,
                config=service.config_for(caller),
            )
            async with (
                aiohttp.ClientSession(middlewares=(signing,)) as session,
                session.post(f"{url}/whoami", json={"hello": "world"}) as answer,
            ):
                print(f"signed: {answer.status} {await answer.json()}")
                signer = answer.mauth_app_uuid  # type: ignore[attr-defined]
                print(f"answer signed by the server: {signer == me.app_uuid}")
                signed_status = answer.status
            async with aiohttp.ClientSession() as plain:
                async with plain.post(f"{url}/whoami", data=b"{}") as answer:
                    print(f"unsigned: {answer.status} {await answer.json()}")
                    unsigned_status = answer.status
                async with plain.get(f"{url}/health") as answer:
                    print(f"exempt /health: {answer.status}")
            assert (signed_status, unsigned_status) == (200, 401)
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
