"""aiohttp.web servers on 127.0.0.1 for the tests, each on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

LOOP = web.AppKey("test.loop", asyncio.AbstractEventLoop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def aiohttp_server(app: web.Application) -> Iterator[str]:
    """Serve ``app`` with AppRunner/TCPSite on a free port; yields the base URL. The
    server's loop is in ``app[LOOP]`` so a test can inspect its tasks."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False)
    started = threading.Event()
    failure: list[BaseException] = []

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    async def stop() -> None:
        await runner.cleanup()
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(stop())
        loop.close()

    app[LOOP] = loop
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(20)
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def tasks_of(app: web.Application) -> list[Any]:
    """The tasks still pending on the server's loop (read from the loop's thread)."""
    loop: asyncio.AbstractEventLoop = app[LOOP]

    async def pending() -> list[Any]:
        me = asyncio.current_task()
        return [t for t in asyncio.all_tasks() if t is not me]

    return asyncio.run_coroutine_threadsafe(pending(), loop).result(10)
