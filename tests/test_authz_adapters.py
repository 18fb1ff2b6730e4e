"""Authorization through every adapter: real servers (werkzeug, uvicorn) or the
framework's own test client (Django), a real local MAuth service, permissions from a
dict, a JSON file, a TOML file and a callable."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
import requests
from django.conf import settings
from flask import Flask, g, jsonify, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.django_urls",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.test import Client, override_settings

from mauth_client.exceptions import ConfigurationError
from mauth_client.fastapi_mauth import MAuthCaller
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.httpx_mauth import MAuthHttpx
from mauth_client.lambda_authenticator import authenticate_event
from mauth_client.middlewares import MAuthASGIMiddleware, MAuthWSGIMiddleware
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import uvicorn_server, werkzeug_server

RULES = [("POST", "/studies/*", "studies:write"), ("*", "/admin/*", "admin")]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    permissions = environ.get("mauth.permissions")
    document = {
        "app_uuid": environ.get("mauth.app_uuid"),
        "permissions": sorted(permissions) if permissions is not None else None,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(document).encode()]


def source_for(kind: str, tmp_path: Path, grants: dict[str, list[str]]) -> Any:
    """The same grants as each kind of permissions source."""
    if kind == "dict":
        return grants
    if kind == "json":
        file = tmp_path / "permissions.json"
        file.write_text(json.dumps(grants))
        return str(file)
    if kind == "toml":
        file = tmp_path / "permissions.toml"
        lines = [
            f'"{app}" = [{", ".join(json.dumps(p) for p in perms)}]'
            for app, perms in grants.items()
        ]
        file.write_text("\n".join(lines) + "\n")
        return str(file)
    assert kind == "callable"
    return lambda app_uuid: list(grants.get(app_uuid, []))


def auth(identity: AppIdentity, versions: str = "v2") -> MAuth:
    return MAuth(identity.app_uuid, identity.private_key, versions)


def errors(answer: requests.Response | httpx.Response) -> list[str]:
    body: dict[str, Any] = answer.json()
    messages: list[str] = body["errors"]["mauth"]
    return messages


# --- WSGI -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dict", "json", "toml", "callable"])
def test_wsgi_rules_with_each_permissions_source(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, tmp_path: Path, kind: str
) -> None:
    grants = {caller.app_uuid: ["studies:write", "studies:read"]}
    config = service.config_for(me, permissions=source_for(kind, tmp_path, grants))
    outsider = service.new_app()  # authentic, no permissions
    with werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config, rules=RULES)) as url:
        allowed = requests.post(f"{url}/studies/7", data=b"{}", auth=auth(caller), timeout=10)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json() == {
            "app_uuid": caller.app_uuid,
            "permissions": ["studies:read", "studies:write"],
        }
        admin = requests.get(f"{url}/admin/users", auth=auth(caller, "v1"), timeout=10)
        assert admin.status_code == 403
        assert admin.headers["Content-Type"] == "application/json"
        assert errors(admin) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        lacking = requests.post(f"{url}/studies/7", auth=auth(outsider), timeout=10)
        assert lacking.status_code == 403
        assert "'studies:write'" in errors(lacking)[0]
        # A route no rule names needs authentication only; the app still sees grants.
        free = requests.get(f"{url}/studies/7", auth=auth(outsider), timeout=10)
        assert free.status_code == 200
        assert free.json() == {"app_uuid": outsider.app_uuid, "permissions": []}
        # Authentication comes first: unsigned and forged requests get 401, not 403.
        assert requests.post(f"{url}/studies/7", timeout=10).status_code == 401
        # Signed with another app's key: inauthentic, so 401 even on a route it lacks.
        forged = requests.post(
            f"{url}/admin/x",
            auth=MAuth(caller.app_uuid, outsider.private_key, "v2"),
            timeout=10,
        )
        assert forged.status_code == 401, forged.text


def test_wsgi_encoded_path_cannot_dodge_a_rule(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    config = service.config_for(me, permissions={caller.app_uuid: []})
    with werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config, rules=RULES)) as url:
        answer = requests.get(f"{url}/%61dmin/users", auth=auth(caller), timeout=10)
        assert answer.status_code == 403, answer.text


def test_wsgi_allow_list_still_works_with_rules(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    config = service.config_for(me, permissions={caller.app_uuid: ["admin"]})
    app = MAuthWSGIMiddleware(wsgi_app, config=config, rules=RULES, app_uuids={"someone-else"})
    with werkzeug_server(app) as url:
        answer = requests.get(f"{url}/admin/x", auth=auth(caller), timeout=10)
        assert answer.status_code == 403
        assert "not allowed" in errors(answer)[0]


def test_wsgi_raising_callable_is_a_logged_500(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def lookup(app_uuid: str) -> list[str]:
        raise RuntimeError("the authorization service timed out")

    config = service.config_for(me, permissions=lookup)
    with (
        werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config, rules=RULES)) as url,
        caplog.at_level(logging.ERROR, logger="mauth_client"),
    ):
        answer = requests.post(f"{url}/studies/1", auth=auth(caller), timeout=10)
        # Even a route with no rule: the grants reach the app, so they must be known.
        free = requests.get(f"{url}/open", auth=auth(caller), timeout=10)
    assert answer.status_code == 500
    assert free.status_code == 500
    assert errors(answer) == ["the caller's permissions could not be looked up"]
    assert "timed out" not in answer.text  # the internal error stays in the log
    logged = [r for r in caplog.records if "the authorization service timed out" in r.getMessage()]
    assert logged and logged[0].levelno == logging.ERROR and logged[0].exc_info is not None


def test_wsgi_rules_without_any_permissions_source_fail_closed(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    app = MAuthWSGIMiddleware(wsgi_app, config=service.config_for(me), rules=RULES)
    with werkzeug_server(app) as url:
        assert requests.post(f"{url}/studies/1", auth=auth(caller), timeout=10).status_code == 403
        open_route = requests.get(f"{url}/studies/1", auth=auth(caller), timeout=10)
        assert open_route.status_code == 200
        assert open_route.json()["permissions"] == []


@pytest.mark.parametrize("rules", [[("GE T", "/x", "p")], [("GET", "no-slash", "p")]])
def test_bad_rules_fail_where_they_are_given(
    service: LocalMAuthService, me: AppIdentity, rules: list[tuple[str, str, str]]
) -> None:
    with pytest.raises(ConfigurationError, match="rule 0"):
        MAuthWSGIMiddleware(wsgi_app, config=service.config_for(me), rules=rules)
    with pytest.raises(ConfigurationError, match="rule 0"):
        MAuthASGIMiddleware(starlette_app(), config=service.config_for(me), rules=rules)


def test_bad_permissions_file_from_the_environment_fails_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "grants.json"
    file.write_text('{"app": "admin"}')
    monkeypatch.setenv("MAUTH_PERMISSIONS_FILE", str(file))
    with pytest.raises(ConfigurationError, match=r"grants\.json") as caught:
        MAuthWSGIMiddleware(wsgi_app, rules=RULES)
    assert "'app'" in str(caught.value)


def test_wsgi_error_detail_off(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = service.config_for(me, permissions={caller.app_uuid: []}, error_detail=False)
    with (
        werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config, rules=RULES)) as url,
        caplog.at_level(logging.INFO, logger="mauth_client"),
    ):
        unsigned = requests.get(f"{url}/x", timeout=10)
        stale = requests.get(
            f"{url}/x",
            headers={"MCC-Authentication": f"MWSV2 {caller.app_uuid}:c2ln;", "MCC-Time": "1"},
            timeout=10,
        )
        forbidden = requests.get(f"{url}/admin/x", auth=auth(caller), timeout=10)
    for answer in (unsigned, stale):
        assert answer.status_code == 401
        assert answer.json() == {"errors": {"mauth": ["authentication failed"]}}
        assert caller.app_uuid not in answer.text
    # A body the middleware cannot read (servers refuse such a header, so called directly).
    statuses: list[str] = []
    middleware = MAuthWSGIMiddleware(wsgi_app, config=config)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "CONTENT_LENGTH": "x3"}
    environ["wsgi.input"] = io.BytesIO(b"abc")
    body = b"".join(middleware(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["401 Unauthorized"]
    assert json.loads(body) == {"errors": {"mauth": ["authentication failed"]}}
    assert forbidden.status_code == 403
    assert forbidden.json() == {"errors": {"mauth": ["forbidden"]}}
    text = caplog.text
    assert "No mAuth signature" in text or "no signature present" in text
    assert "seconds old" in text  # the clock detail stays in the log
    assert "lacks the permission 'admin'" in text


def test_wsgi_error_detail_off_from_the_environment(
    service: LocalMAuthService, me: AppIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAUTH_ERROR_DETAIL", "false")
    monkeypatch.setenv("APP_UUID", me.app_uuid)
    monkeypatch.setenv("MAUTH_PRIVATE_KEY", me.private_key)
    monkeypatch.setenv("MAUTH_URL", service.url)
    app = MAuthWSGIMiddleware(wsgi_app)
    with werkzeug_server(app) as url:
        answer = requests.get(f"{url}/x", timeout=10)
    assert answer.status_code == 401
    assert errors(answer) == ["authentication failed"]


@pytest.mark.parametrize(("level", "expected"), [(None, logging.WARNING), ("INFO", logging.INFO)])
def test_failure_log_level(
    service: LocalMAuthService,
    me: AppIdentity,
    caplog: pytest.LogCaptureFixture,
    level: str | None,
    expected: int,
) -> None:
    overrides = {} if level is None else {"failure_log_level": level}
    config = service.config_for(me, **overrides)
    with (
        werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config)) as url,
        caplog.at_level(logging.DEBUG, logger="mauth_client"),
    ):
        requests.get(f"{url}/x", timeout=10)
    failures = [r for r in caplog.records if "no signature present" in r.getMessage()]
    assert [r.levelno for r in failures] == [expected]


def test_success_line_stays_info(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = service.config_for(me, failure_log_level="ERROR")
    with (
        werkzeug_server(MAuthWSGIMiddleware(wsgi_app, config=config)) as url,
        caplog.at_level(logging.DEBUG, logger="mauth_client"),
    ):
        assert requests.get(f"{url}/x", auth=auth(caller), timeout=10).status_code == 200
    lines = [r for r in caplog.records if "authenticating a message" in r.getMessage()]
    assert lines and all(r.levelno == logging.INFO for r in lines)


# --- ASGI -------------------------------------------------------------------------------


def starlette_app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        permissions = request.scope.get("mauth.permissions")
        return JSONResponse(
            {
                "app_uuid": request.scope.get("mauth.app_uuid"),
                "permissions": sorted(permissions) if permissions is not None else None,
            }
        )

    return Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST", "DELETE"])])


@pytest.mark.parametrize("kind", ["dict", "toml"])
def test_asgi_rules(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, tmp_path: Path, kind: str
) -> None:
    grants = {caller.app_uuid: ["studies:write"]}
    app = MAuthASGIMiddleware(
        starlette_app(),
        config=service.config_for(me, permissions=source_for(kind, tmp_path, grants)),
        rules=RULES,
    )
    signer = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with uvicorn_server(app) as url, httpx.Client(auth=signer, timeout=10) as client:
        allowed = client.post(f"{url}/studies/1", content=b"{}")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json() == {"app_uuid": caller.app_uuid, "permissions": ["studies:write"]}
        forbidden = client.delete(f"{url}/admin/1")
        assert forbidden.status_code == 403
        assert errors(forbidden) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        assert httpx.post(f"{url}/studies/1", timeout=10).status_code == 401


# --- Flask ------------------------------------------------------------------------------


def flask_app(service: LocalMAuthService, me: AppIdentity, **options: Any) -> Flask:
    app = Flask("mauth-authz-test")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid, MAUTH_PRIVATE_KEY=me.private_key, MAUTH_URL=service.url
    )
    FlaskAuthenticator(app, **options)

    @app.post("/studies")
    @requires_authentication(permissions={"studies:write"})
    def create() -> Any:
        return jsonify(app_uuid=g.mauth_app_uuid, permissions=sorted(g.mauth_permissions))

    @app.post("/admin/studies")
    @requires_authentication(permissions=["studies:write", "admin"])
    def admin_create() -> Any:
        environ = request.environ["mauth.permissions"]
        return jsonify(permissions=sorted(environ))

    @app.get("/open")
    @requires_authentication
    def open_route() -> Any:
        return jsonify(permissions=sorted(g.mauth_permissions))

    return app


@pytest.mark.parametrize("kind", ["dict", "json", "toml", "callable"])
def test_flask_decorator_permissions(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, tmp_path: Path, kind: str
) -> None:
    grants = {caller.app_uuid: ["studies:write"]}
    app = flask_app(service, me, permissions=source_for(kind, tmp_path, grants))
    with werkzeug_server(app) as url:
        allowed = requests.post(f"{url}/studies", auth=auth(caller), timeout=10)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json() == {"app_uuid": caller.app_uuid, "permissions": ["studies:write"]}
        lacking = requests.post(f"{url}/admin/studies", auth=auth(caller), timeout=10)
        assert lacking.status_code == 403
        assert errors(lacking) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        assert requests.post(f"{url}/studies", timeout=10).status_code == 401
        assert requests.get(f"{url}/open", auth=auth(caller), timeout=10).json() == {
            "permissions": ["studies:write"]
        }


def test_flask_permissions_file_from_app_config_and_rules(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, tmp_path: Path
) -> None:
    file = tmp_path / "grants.json"
    file.write_text(json.dumps({caller.app_uuid: ["studies:write", "admin"]}))
    app = Flask("mauth-authz-rules")
    app.config.update(
        MAUTH_APP_UUID=me.app_uuid,
        MAUTH_PRIVATE_KEY=me.private_key,
        MAUTH_URL=service.url,
        MAUTH_PERMISSIONS_FILE=str(file),
        MAUTH_RULES=[("GET", "/reports/*", "reports:read")],
    )
    FlaskAuthenticator(app, authenticate_all=True)

    @app.get("/reports/<name>")
    def report(name: str) -> Any:
        return jsonify(name=name)

    @app.post("/studies")
    @requires_authentication(permissions={"studies:write"})
    def create() -> Any:
        return jsonify(permissions=sorted(g.mauth_permissions))

    with werkzeug_server(app) as url:
        answer = requests.get(f"{url}/reports/q1", auth=auth(caller), timeout=10)
        assert answer.status_code == 403
        assert "'reports:read'" in errors(answer)[0]
        created = requests.post(f"{url}/studies", auth=auth(caller), timeout=10)
        assert created.json() == {"permissions": ["admin", "studies:write"]}


def test_flask_decorator_refuses_a_single_string() -> None:
    with pytest.raises(ConfigurationError, match="collection"):
        requires_authentication(permissions="admin")  # type: ignore[arg-type]


# --- Django -----------------------------------------------------------------------------


def django_signed(caller: AppIdentity, method: str, target: str) -> dict[str, str]:
    return Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method=method, url=target, body=b"")
    )


@pytest.fixture
def django_options(service: LocalMAuthService, me: AppIdentity) -> dict[str, Any]:
    return {"APP_UUID": me.app_uuid, "MAUTH_PRIVATE_KEY": me.private_key, "MAUTH_URL": service.url}


@pytest.mark.parametrize("kind", ["dict", "json", "toml", "callable"])
def test_django_decorator_permissions(
    django_options: dict[str, Any], caller: AppIdentity, tmp_path: Path, kind: str
) -> None:
    grants = {caller.app_uuid: ["studies:write"]}
    source = source_for(kind, tmp_path, grants)
    options = {**django_options, "PERMISSIONS": source}
    if kind in ("json", "toml"):  # the environment name works in settings.MAUTH too
        options = {**django_options, "MAUTH_PERMISSIONS_FILE": source}
    with override_settings(MAUTH=options, ROOT_URLCONF="tests.django_authz_urls"):
        answer = Client().post(
            "/write",
            data=b"",
            content_type="text/plain",
            headers=django_signed(caller, "POST", "/write"),
        )
        assert answer.status_code == 200, answer.content
        assert answer.json() == {
            "app_uuid": caller.app_uuid,
            "permissions": ["studies:write"],
            "environ": ["studies:write"],
        }
        lacking = Client().post(
            "/admin-write",
            data=b"",
            content_type="text/plain",
            headers=django_signed(caller, "POST", "/admin-write"),
        )
        assert lacking.status_code == 403
        assert lacking.json() == {
            "errors": {"mauth": [f"app {caller.app_uuid} lacks the permission 'admin'"]}
        }
        assert Client().post("/write").status_code == 401


def test_django_rules_in_the_middleware(
    django_options: dict[str, Any], caller: AppIdentity
) -> None:
    options = {
        **django_options,
        "PERMISSIONS": {caller.app_uuid: ["reports:read"]},
        "RULES": [("GET", "/plain/admin/*", "admin"), ("GET", "/plain/reports/*", "reports:read")],
    }
    with override_settings(
        MAUTH=options,
        ROOT_URLCONF="tests.django_authz_urls",
        MIDDLEWARE=["mauth_client.django.MAuthMiddleware"],
    ):
        target = "/plain/admin/users"
        denied = Client().get(target, headers=django_signed(caller, "GET", target))
        assert denied.status_code == 403
        assert "'admin'" in denied.json()["errors"]["mauth"][0]
        target = "/plain/reports/q1"
        allowed = Client().get(target, headers=django_signed(caller, "GET", target))
        assert allowed.status_code == 200
        assert allowed.json()["permissions"] == ["reports:read"]
        # The decorator sees the same RULES through the shared guard.
        target = "/bare/anything"
        assert Client().get(target, headers=django_signed(caller, "GET", target)).status_code == 200


def test_django_bad_rules_fail_when_the_middleware_is_built(
    django_options: dict[str, Any],
) -> None:
    from mauth_client.django import MAuthMiddleware

    with (
        override_settings(MAUTH={**django_options, "RULES": [("GET", "admin", "x")]}),
        pytest.raises(ConfigurationError, match="rule 0"),
    ):
        MAuthMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]


def test_django_decorator_refuses_a_single_string() -> None:
    from mauth_client.django import mauth_required

    with pytest.raises(ConfigurationError, match="collection"):
        mauth_required(permissions="admin")  # type: ignore[arg-type]


# --- Lambda -----------------------------------------------------------------------------


def test_lambda_event_error_detail_and_permissions(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """Lambda goes through the same guard: generic bodies when detail is off."""
    event = {"version": "2.0", "rawPath": "/x", "requestContext": {"http": {"method": "GET"}}}
    config = service.config_for(me, error_detail=False)
    ok = authenticate_event({**event, "headers": django_signed(caller, "GET", "/x")}, config=config)
    assert ok.status_code == 200 and ok.app_uuid == caller.app_uuid
    unsigned = authenticate_event({**event, "headers": {}}, config=config)
    assert tuple(unsigned) == (False, 401, "authentication failed")
    not_http = authenticate_event({"source": "aws.events"}, config=config)
    assert tuple(not_http) == (False, 401, "authentication failed")


# --- FastAPI and aiohttp: rules through a shared guard ------------------------------------


def test_fastapi_dependency_with_a_guard_holding_rules(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """A ``guard=`` built with rules enforces them through the dependency (its own
    ``permissions=``/``rules=`` are in test_authz_async_adapters.py) (uvicorn on 127.0.0.1)."""
    from fastapi import Depends, FastAPI

    from mauth_client.fastapi_mauth import MAuthRequired, install
    from mauth_client.server import RequestGuard

    guard = RequestGuard(
        config=service.config_for(me, permissions={caller.app_uuid: ["studies:write"]}),
        rules=RULES,
    )
    app = FastAPI()
    install(app)
    dependency = MAuthRequired(guard=guard)

    @app.post("/studies/{study}")
    async def create(study: str, who: MAuthCaller = Depends(dependency)) -> Any:  # noqa: B008
        return {"caller": who.app_uuid}

    @app.get("/admin/{page}")
    async def admin(page: str, who: MAuthCaller = Depends(dependency)) -> Any:  # noqa: B008
        return {"caller": who.app_uuid}

    signer = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with uvicorn_server(app) as url, httpx.Client(auth=signer, timeout=10) as client:
        allowed = client.post(f"{url}/studies/1", content=b"{}")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json() == {"caller": caller.app_uuid}
        denied = client.get(f"{url}/admin/users")
        assert denied.status_code == 403
        assert errors(denied) == [f"app {caller.app_uuid} lacks the permission 'admin'"]
        assert httpx.get(f"{url}/admin/users", timeout=10).status_code == 401


def test_aiohttp_middleware_with_a_guard_holding_rules(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    from aiohttp import web

    from mauth_client.aiohttp_mauth import MAuthWebMiddleware
    from mauth_client.server import RequestGuard

    from .async_servers import aiohttp_server

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    guard = RequestGuard(
        config=service.config_for(me, permissions={caller.app_uuid: ["studies:write"]}),
        rules=RULES,
    )
    app = web.Application(middlewares=[MAuthWebMiddleware(guard=guard)])
    app.router.add_route("*", "/{tail:.*}", hello)
    signer = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with aiohttp_server(app) as url, httpx.Client(auth=signer, timeout=10) as client:
        assert client.post(f"{url}/studies/1", content=b"{}").status_code == 200
        denied = client.delete(f"{url}/admin/1")
        assert denied.status_code == 403
        assert "'admin'" in errors(denied)[0]
