"""Issue 11 item 1: with the caller's key cached, the ASGI middleware checks on the
event loop; only key fetches leave it. While 20 requests wait on a slow key service
(2 s each, more than the default executor has threads), a cached app's request
completes before any of them."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx

from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.middlewares import MAuthASGIMiddleware
from mauth_client.testing import LocalMAuthService, generate_identity

from ..servers import uvicorn_server


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["mauth.app_uuid"].encode()})


def test_cached_app_is_not_queued_behind_key_fetches() -> None:
    me, cached = generate_identity(), generate_identity()
    with LocalMAuthService(latency=2.0) as service:
        service.add_app(me.app_uuid, me.public_key)
        service.add_app(cached.app_uuid, cached.public_key)
        strangers = [str(uuid.uuid4()) for _ in range(20)]
        for stranger in strangers:  # registered, not yet cached: each needs a 2 s fetch
            service.add_app(stranger, cached.public_key)
        middleware = MAuthASGIMiddleware(app, config=service.config_for(me))
        with uvicorn_server(middleware) as base:
            cached_auth = MAuthHttpx(cached.app_uuid, cached.private_key, "v2")
            with httpx.Client(auth=cached_auth, timeout=30) as client:
                assert client.get(f"{base}/warm").status_code == 200  # key now cached

            finished: dict[str, float] = {}

            def slow_call(app_uuid: str) -> None:
                auth = MAuthHttpx(app_uuid, cached.private_key, "v2")
                with httpx.Client(auth=auth, timeout=60) as client:
                    assert client.get(f"{base}/slow").status_code == 200
                finished[app_uuid] = time.monotonic()

            threads = [threading.Thread(target=slow_call, args=(s,)) for s in strangers]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # every slow request is now waiting on its key fetch
            with httpx.Client(auth=cached_auth, timeout=30) as client:
                started = time.monotonic()
                answer = client.get(f"{base}/fast")
                done = time.monotonic()
            for thread in threads:
                thread.join(90)
    assert answer.status_code == 200 and answer.text == cached.app_uuid
    assert len(finished) == 20
    assert done < min(finished.values()), "the cached app's request waited for a key fetch"
    print(f"cached app's request took {(done - started) * 1000:.1f} ms while 20 fetches waited")
    assert done - started < 1.0  # generous: it needs no I/O at all
