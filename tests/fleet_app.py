"""One instance of a fleet for the replay tests: a WSGI app behind MAuthWSGIMiddleware,
configured from the environment (MAUTH_URL, APP_UUID, MAUTH_PRIVATE_KEY,
MAUTH_REPLAY_CACHE), served by werkzeug on 127.0.0.1. Prints its URL, then serves."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from werkzeug.serving import make_server

from mauth_client.middlewares import MAuthWSGIMiddleware


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"ok from {os.getpid()} for {environ['mauth.app_uuid']}".encode()]


def main() -> None:
    server = make_server("127.0.0.1", 0, MAuthWSGIMiddleware(app), threaded=True)
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    main()
