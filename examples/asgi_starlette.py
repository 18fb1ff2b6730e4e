"""A Starlette (or FastAPI) app behind MAuthASGIMiddleware under uvicorn, called with httpx.

    python3 examples/asgi_starlette.py

FastAPI is Starlette underneath: ``app.add_middleware(MAuthASGIMiddleware, exempt=...)``
works the same way. Runs as written, no configuration.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.middlewares import MAuthASGIMiddleware
from mauth_client.testing import LocalMAuthService


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "caller": request.scope["mauth.app_uuid"],
            "version": request.scope["mauth.protocol_version"],
        }
    )


def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        app = MAuthASGIMiddleware(
            Starlette(routes=[Route("/whoami", whoami)]), config=service.config_for(me)
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")
            with httpx.Client(auth=auth) as client:
                answer = client.get(f"{url}/whoami")
            print(f"signed: {answer.status_code} {answer.json()}")
            unsigned = httpx.get(f"{url}/whoami")
            print(f"unsigned: {unsigned.status_code} {unsigned.json()}")
            assert (answer.status_code, unsigned.status_code) == (200, 401)
        finally:
            server.should_exit = True
            thread.join(10)


if __name__ == "__main__":
    main()
