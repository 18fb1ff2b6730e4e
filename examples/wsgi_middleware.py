"""Any WSGI app behind MAuthWSGIMiddleware. Runs as written, no configuration.

python3 examples/wsgi_middleware.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import requests

from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.requests_mauth import MAuth
from mauth_client.testing import LocalMAuthService, serve_wsgi


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    caller = environ["mauth.app_uuid"] if environ.get("mauth.authentic") else "nobody"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {caller}".encode()]


def main() -> None:
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        protected = MAuthWSGIMiddleware(app, exempt={"/app_status"}, config=service.config_for(me))
        with serve_wsgi(protected) as url:
            signed = requests.get(
                f"{url}/hello", auth=MAuth(caller.app_uuid, caller.private_key, "v2"), timeout=10
            )
            print(f"signed: {signed.status_code} {signed.text}")
            unsigned = requests.get(f"{url}/hello", timeout=10)
            print(f"unsigned: {unsigned.status_code} {unsigned.text}")
            health = requests.get(f"{url}/app_status", timeout=10)
            print(f"exempt /app_status: {health.status_code} {health.text}")
            assert (signed.status_code, unsigned.status_code, health.status_code) == (200, 401, 200)


if __name__ == "__main__":
    main()
