"""Authorization through the async adapters (issue 13): the FastAPI dependency's
``permissions=``/``rules=`` (FastAPI's TestClient and uvicorn on 127.0.0.1) and the
aiohttp middleware's ``rules=``/``permissions=`` and ``requires_permissions`` (real
aiohttp servers), against a real local MAuth service."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from mauth_client import observability
from mauth_client.aiohttp_mauth import (
    APP_UUID,
    PERMISSIONS,
    MAuthWebMiddleware,
    requires_permissions,
)
from mauth_client.exceptions import ConfigurationError
from mauth_client.fastapi_mauth import MAuthCaller, MAuthRequired, install
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.server import RequestGuard
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .async_servers import aiohttp_server
from .servers import uvicorn_server

RULES = [("POST", "/studies/*", "studies:write"), ("*", "/admin/*", "admin")]


def signer(identity: AppIdentity, versions: str = "v2") -> MAuthHttpx:
    return MAuthHttpx(identity.app_uuid, identity.private_key, versions)


def errors(answer: httpx.Response) -> list[str]:
    body: dict[str, Any] = answer.json()
    messages: list[str] = body["errors"]["mauth"]
    return messages


def on_a_loop() -> bool:
    """True when called on a thread running an event loop (a blocking call there
    would stall every request)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def events() -> Iterator[list[observability.Event]]:
    seen: list[observability.Event] = []
    unsubscribe = observability.subscribe(seen.append)
    try:
        yield seen
    finally:
        unsubscribe()


# --- FastAPI ------------------------------------------------------------------------------


def fastapi_app(base: MAuthRequired) -> FastAPI:
    """Per-route permissions three ways: a dependency of its own, one sharing
    ``base``'s guard (:meth:`MAuthRequired.requiring`), and ``base``'s rules."""
    app = FastAPI()
    install(app)
    writer = MAuthRequired(permissions={"studies:write", "studies:read"}, guard=base.guard)
    admin = base.requiring({"admin"})

    def seen(who: MAuthCaller, request: Request) -> dict[str, Any]:
        return {
            "caller": who.app_uuid,
            "permissions": sorted(who.permissions),
            "scope": sorted(request.scope["mauth.permissions"]),
        }

    @app.put("/write")
    async def write(request: Request, who: MAuthCaller = Depends(writer)) -> Any:  # noqa: B008
        return seen(who, request)

    @app.get("/admin-only")
    async def admin_only(request: Request, who: MAuthCaller = Depends(admin)) -> Any:  # noqa: B008
        return seen(who, request)

    @app.api_route("/{tail:path}", methods=["GET", "POST", "DELETE"])
    async def ruled(request: Request, tail: str, who: MAuthCaller = Depends(base)) -> Any:  # noqa: B008
        return seen(who, request)

    return app


def test_fastapi_permissions_and_rules_over_uvicorn(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    grants = {caller.app_uuid: ["studies:write", "studies:read"]}
    base = MAuthRequired(config=service.config_for(me, permissions=grants), rules=RULES)
    outsider = service.new_app()  # authentic, granted nothing
    with (
        uvicorn_server(fastapi_app(base)) as url,
        httpx.Client(auth=signer(caller), timeout=10) as client,
        httpx.Client(auth=signer(outsider, "v1"), timeout=10) as other,
    ):
        allowed = client.put(f"{url}/write", content=b"{}")
        assert allowed.status_code == 200, allowed.text
        both = ["studies:read", "studies:write"]
        assert allowed.json() == {"caller": caller.app_uuid, "permissions": both, "scope": both}
        ruled = client.post(f"{url}/studies/9", content=b"{}")
        assert ruled.status_code == 200, ruled.text
        assert ruled.json()["permissions"] == both
        # The per-route requirement: all listed are needed; the 403 names what lacks.
        lacking = other.put(f"{url}/write", content=b"{}")
        assert lacking.status_code == 403
        assert errors(lacking) == [
            f"app {outsider.app_uuid} lacks the permissions 'studies:read', 'studies:write'"
        ]
        admin = client.get(f"{url}/admin-only")
        assert admin.status_code == 403
        assert errors(admin) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        by_rule = client.delete(f"{url}/admin/users")
        assert by_rule.status_code == 403
        assert errors(by_rule) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        dodge = client.get(f"{url}/%61dmin/users")  # an encoded path cannot dodge a rule
        assert dodge.status_code == 403, dodge.text
        # A route no rule names needs authentication only; the grants still reach it.
        free = other.get(f"{url}/studies/9")
        assert free.status_code == 200
        assert free.json() == {"caller": outsider.app_uuid, "permissions": [], "scope": []}
        # Authentication first: unsigned or forged requests are 401 whatever they ask.
        assert httpx.put(f"{url}/write", content=b"{}", timeout=10).status_code == 401
        assert httpx.get(f"{url}/admin-only", timeout=10).status_code == 401
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="PUT", url="/write", body=b"{}")
        )
        tampered = httpx.put(f"{url}/write", content=b"{!}", headers=headers, timeout=10)
        assert tampered.status_code == 401  # a caller holding the grants, a forged body


def test_fastapi_error_detail_off(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    base = MAuthRequired(
        config=service.config_for(me, permissions={caller.app_uuid: []}, error_detail=False),
        rules=RULES,
    )
    client = TestClient(fastapi_app(base))
    denied = client.put("/write", content=b"{}", auth=signer(caller))
    assert denied.status_code == 403
    assert denied.json() == {"errors": {"mauth": ["forbidden"]}}
    unsigned = client.put("/write", content=b"{}")
    assert unsigned.status_code == 401
    assert unsigned.json() == {"errors": {"mauth": ["authentication failed"]}}


def test_fastapi_raising_callable_is_a_logged_500_off_the_loop(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[bool] = []

    def lookup(app_uuid: str) -> list[str]:
        calls.append(on_a_loop())
        raise RuntimeError("the authorization service timed out")

    base = MAuthRequired(config=service.config_for(me, permissions=lookup), rules=RULES)
    client = TestClient(fastapi_app(base))
    with caplog.at_level(logging.ERROR, logger="mauth_client"):
        answer = client.post("/studies/1", content=b"{}", auth=signer(caller))
        free = client.get("/studies/1", auth=signer(caller))  # no rule: grants still needed
    assert answer.status_code == 500 and free.status_code == 500
    assert errors(answer) == ["the caller's permissions could not be looked up"]
    assert "timed out" not in answer.text
    logged = [r for r in caplog.records if "the authorization service timed out" in r.getMessage()]
    assert logged and logged[0].levelno == logging.ERROR and logged[0].exc_info is not None
    assert calls == [False, False]  # a callable may block: never called on the event loop


def test_fastapi_options_are_checked_where_given() -> None:
    with pytest.raises(ConfigurationError, match="collection"):
        MAuthRequired(permissions="admin")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MAuthRequired(rules=[("FETCH!", "/x", "p")])
    with pytest.raises(ConfigurationError):
        MAuthRequired().requiring("admin")  # type: ignore[arg-type]


def test_fastapi_adapter_refusal_goes_through_the_guard(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    events: list[observability.Event],
) -> None:
    """A chunked body past the size limit (no Content-Length to refuse it early): the
    dependency's own 413 is reported as an event like every other refusal."""
    base = MAuthRequired(config=service.config_for(me, max_body_size=8))
    client = TestClient(fastapi_app(base))

    def chunks() -> Iterator[bytes]:
        yield b"0123456789"
        yield b"abcdef"

    answer = client.post("/studies/1", content=chunks(), auth=signer(caller))
    assert answer.status_code == 413
    assert errors(answer) == ["the request body exceeds 8 bytes"]
    refusals = [e for e in events if e.kind == "authentication" and "exceeds 8" in e.reason]
    assert len(refusals) == 1 and refusals[0].outcome == "inauthentic"


# --- aiohttp ------------------------------------------------------------------------------


async def echo(request: web.Request) -> web.Response:
    permissions = request.get(PERMISSIONS)
    return web.json_response(
        {
            "caller": request.get(APP_UUID),
            "permissions": sorted(permissions) if permissions is not None else None,
        }
    )


@requires_permissions({"reports:read"})
async def report(request: web.Request) -> web.Response:
    return await echo(request)


@requires_permissions({"views:use"})
class Reports(web.View):
    async def get(self) -> web.Response:
        return await echo(self.request)


def aiohttp_app(middleware: MAuthWebMiddleware, **options: Any) -> web.Application:
    app = web.Application(middlewares=[middleware], **options)
    app.router.add_get("/reports", report)
    app.router.add_view("/view", Reports)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def test_aiohttp_rules_permissions_and_a_marked_handler(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    grants = {caller.app_uuid: ["studies:write", "reports:read"]}
    middleware = MAuthWebMiddleware(config=service.config_for(me), permissions=grants, rules=RULES)
    outsider = service.new_app()
    with (
        aiohttp_server(aiohttp_app(middleware)) as url,
        httpx.Client(auth=signer(caller), timeout=10) as client,
        httpx.Client(auth=signer(outsider, "v1"), timeout=10) as other,
    ):
        allowed = client.post(f"{url}/studies/3", content=b"{}")
        assert allowed.status_code == 200, allowed.text
        granted = ["reports:read", "studies:write"]
        assert allowed.json() == {"caller": caller.app_uuid, "permissions": granted}
        assert client.get(f"{url}/reports").json()["permissions"] == granted
        denied = other.get(f"{url}/reports")
        assert denied.status_code == 403
        assert errors(denied) == [f"app {outsider.app_uuid} lacks the permission 'reports:read'"]
        view = client.get(f"{url}/view")
        assert view.status_code == 403
        assert errors(view) == [f"app {caller.app_uuid} lacks the permission 'views:use'"]
        ruled = client.delete(f"{url}/admin/1")
        assert ruled.status_code == 403
        assert errors(ruled) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        dodge = client.get(f"{url}/%61dmin/1")  # an encoded path cannot dodge a rule
        assert dodge.status_code == 403, dodge.text
        free = other.get(f"{url}/anything")
        assert free.json() == {"caller": outsider.app_uuid, "permissions": []}
        assert httpx.get(f"{url}/reports", timeout=10).status_code == 401
        assert httpx.post(f"{url}/studies/3", content=b"{}", timeout=10).status_code == 401


def test_aiohttp_rules_add_to_a_shared_guard(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    guard = RequestGuard(
        config=service.config_for(me, permissions={caller.app_uuid: ["admin"]}),
        rules=[("*", "/admin/*", "admin")],
    )
    middleware = MAuthWebMiddleware(guard=guard, rules=[("GET", "/audit", "audit")])
    with (
        aiohttp_server(aiohttp_app(middleware)) as url,
        httpx.Client(auth=signer(caller), timeout=10) as client,
    ):
        assert client.get(f"{url}/admin/x").status_code == 200
        audit = client.get(f"{url}/audit")
        assert audit.status_code == 403
        assert errors(audit) == [f"app {caller.app_uuid} lacks the permission 'audit'"]
    with pytest.raises(ConfigurationError, match="guard"):
        MAuthWebMiddleware(guard=guard, permissions={caller.app_uuid: ["audit"]})
    with pytest.raises(ConfigurationError):
        requires_permissions("admin")  # type: ignore[arg-type]


def test_aiohttp_error_detail_off_and_own_refusals(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    events: list[observability.Event],
) -> None:
    config = service.config_for(me, permissions={caller.app_uuid: []}, error_detail=False)
    middleware = MAuthWebMiddleware(config=config, rules=RULES)
    app = aiohttp_app(middleware, client_max_size=16)
    with (
        aiohttp_server(app) as url,
        httpx.Client(auth=signer(caller), timeout=10) as client,
    ):
        denied = client.post(f"{url}/studies/1", content=b"{}")
        assert denied.status_code == 403
        assert denied.json() == {"errors": {"mauth": ["forbidden"]}}
        marked = client.get(f"{url}/reports")
        assert marked.json() == {"errors": {"mauth": ["forbidden"]}}
        unsigned = httpx.post(f"{url}/studies/1", content=b"{}", timeout=10)
        assert unsigned.status_code == 401
        assert unsigned.json() == {"errors": {"mauth": ["authentication failed"]}}

        def chunks() -> Iterator[bytes]:
            yield b"x" * 10
            yield b"y" * 10

        big = client.post(f"{url}/anything", content=chunks())  # aiohttp's own limit
        assert big.status_code == 413
        assert "larger than this server accepts" in errors(big)[0]
    refusals = [e for e in events if "larger than this server accepts" in e.reason]
    assert len(refusals) == 1 and refusals[0].outcome == "inauthentic"


def test_aiohttp_raising_callable_is_a_logged_500_off_the_loop(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    threads: list[bool] = []

    def lookup(app_uuid: str) -> list[str]:
        threads.append(on_a_loop() or threading.current_thread() is threading.main_thread())
        raise RuntimeError("the authorization service timed out")

    middleware = MAuthWebMiddleware(config=service.config_for(me), permissions=lookup)
    with (
        aiohttp_server(aiohttp_app(middleware)) as url,
        httpx.Client(auth=signer(caller), timeout=10) as client,
        caplog.at_level(logging.ERROR, logger="mauth_client"),
    ):
        answer = client.get(f"{url}/reports")
    assert answer.status_code == 500
    assert errors(answer) == ["the caller's permissions could not be looked up"]
    assert "timed out" not in answer.text
    logged = [r for r in caplog.records if "the authorization service timed out" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert threads == [False]
