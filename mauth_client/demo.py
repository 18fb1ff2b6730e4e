"""``mauth-client demo``: MAuth end to end on this machine, with no configuration.

Generates throwaway keys, starts the local MAuth service and a small Flask app
protected by ``requires_authentication`` on 127.0.0.1, sends it requests that
should and should not pass, and prints what each got and why. Exit status 0 only
if every outcome is the expected one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import requests

from ._console import CommandError, Style
from .requests_mauth import MAuth
from .signable import RequestSignable
from .signer import Signer
from .testing import AppIdentity, LocalMAuthService, generate_identity, serve_wsgi


class Case(NamedTuple):
    name: str
    expected: int
    send: Callable[[str], requests.Response]


class _Tamper(requests.auth.AuthBase):
    """Signs, then swaps the body: a man in the middle."""

    def __init__(self, inner: MAuth) -> None:
        self.inner = inner

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.inner(request)
        request.body = b'{"amount": 1000000}'
        return request


def _app(service: LocalMAuthService, server: AppIdentity, allowed: set[str]) -> Any:
    from flask import Flask, g, jsonify

    from .flask_authenticator import FlaskAuthenticator, requires_authentication

    app = Flask("mauth-demo")
    app.config.update(
        MAUTH_APP_UUID=server.app_uuid, MAUTH_PRIVATE_KEY=server.private_key, MAUTH_URL=service.url
    )
    FlaskAuthenticator(app)

    @app.post("/payments")
    @requires_authentication(app_uuids=allowed)
    def payments() -> Any:
        return jsonify(accepted_from=g.mauth_app_uuid)

    return app


def _cases(service: LocalMAuthService, caller: AppIdentity, outsider: AppIdentity) -> list[Case]:
    body = b'{"amount": 10}'

    def signed(versions: str, who: AppIdentity = caller) -> Callable[[str], requests.Response]:
        auth = MAuth(who.app_uuid, who.private_key, versions)
        return lambda url: requests.post(f"{url}/payments", data=body, auth=auth, timeout=10)

    def stale(url: str) -> requests.Response:
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="POST", url="/payments", body=body),
            {"time": int(time.time()) - 600},
        )
        return requests.post(f"{url}/payments", data=body, headers=headers, timeout=10)

    def tampered(url: str) -> requests.Response:
        auth = _Tamper(MAuth(caller.app_uuid, caller.private_key, "v1,v2"))
        return requests.post(f"{url}/payments", data=body, auth=auth, timeout=10)

    stranger = generate_identity()  # never registered with the MAuth service
    return [
        Case("signed with V1", 200, signed("v1")),
        Case("signed with V2", 200, signed("v2")),
        Case("signed with V1 and V2", 200, signed("v1,v2")),
        Case("unsigned", 401, lambda url: requests.post(f"{url}/payments", data=body, timeout=10)),
        Case("body tampered after signing", 401, tampered),
        Case("signed 10 minutes ago", 401, stale),
        Case("app unknown to the MAuth service", 401, signed("v2", stranger)),
        Case("authentic app not on the allow-list", 403, signed("v2", outsider)),
    ]


def _why(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:80]
    if "errors" in document:
        return str(document["errors"]["mauth"][0])
    return f"accepted from app {document.get('accepted_from', '?')[:8]}..."


def run_demo(out: TextIO, style: Style) -> int:
    try:
        import flask  # noqa: F401
    except ImportError:
        raise CommandError("the demo needs Flask: pip install 'mauth-client[flask]'") from None
    with LocalMAuthService() as service:
        server, caller, outsider = service.new_app(), service.new_app(), service.new_app()
        out.write(f"local MAuth service: {service.url} (3 apps registered, throwaway keys)\n")
        with serve_wsgi(_app(service, server, {caller.app_uuid})) as url:
            out.write(
                f"Flask app:           {url}/payments (requires_authentication, "
                f"allow-list of 1 app)\n\n"
            )
            rows = []
            for case in _cases(service, caller, outsider):
                response = case.send(url)
                rows.append((case, response.status_code, _why(response)))
    width = max(len(case.name) for case, _, _ in rows)
    out.write(f"   {'request':{width}}  expected  got  why\n")
    failures = 0
    for case, status, why in rows:
        ok = status == case.expected
        failures += not ok
        mark = style.good("ok") if ok else style.bad("NO")
        got = str(status) if ok else style.bad(str(status))
        if len(why) > 90:
            why = why[:87] + "..."
        out.write(f"{mark} {case.name:{width}}  {case.expected:<8}  {got:<3}  {style.dim(why)}\n")
    summary = f"\n{len(rows) - failures} of {len(rows)} outcomes as expected"
    out.write((style.good(summary) if not failures else style.bad(summary)) + "\n")
    return 0 if not failures else 1
