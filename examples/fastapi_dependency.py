"""A FastAPI app that protects some routes with the MAuth dependency, under uvicorn.

    python3 examples/fastapi_dependency.py

``/orders`` needs an authentic MAuth signature and gets the caller; ``/health``
stays open. The handler reads the body itself (``await request.json()``): the
dependency's read is cached by Starlette, nothing is read twice. Runs as written,
no configuration.
"""

# No "from __future__ import annotations" here: FastAPI reads the handlers'
# annotations at run time, and the Caller alias below is local to make_app.
import asyncio
import socket
import threading
import time
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request

from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.testing import LocalMAuthService


def make_app(mauth_required: MAuthRequired) -> FastAPI:
    app = FastAPI()
    install(app)  # refusals as {"errors": {"mauth": [message]}}
    Caller = Annotated[MAuthCaller, Depends(mauth_required)]

    @app.post("/orders")
    async def create_order(request: Request, caller: Caller) -> dict[str, Any]:
        order = await request.json()
        return {"caller": caller.app_uuid, "version": caller.protocol_version, "order": order}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        # In production: MAuthRequired() reads APP_UUID, MAUTH_URL... from the environment.
        app = make_app(MAuthRequired(config=service.config_for(me)))
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
            auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
            with httpx.Client(auth=auth) as client:
                answer = client.post(f"{url}/orders", json={"item": "tea", "count": 2})
            print(f"signed: {answer.status_code} {answer.json()}")
            unsigned = httpx.post(f"{url}/orders", json={"item": "tea"})
            print(f"unsigned: {unsigned.status_code} {unsigned.json()}")
            health = httpx.get(f"{url}/health")
            print(f"open route: {health.status_code}")
            assert (answer.status_code, unsigned.status_code, health.status_code) == (200, 401, 200)
            assert answer.json()["caller"] == caller.app_uuid
        finally:
            server.should_exit = True
            thread.join(10)


if __name__ == "__main__":
    main()
