"""Every Python block in README.md runs, as written (issue 9 item 4).

The convention (also in CONTRIBUTING.md): a block runs in a fresh namespace with no MAuth
environment variables set. A block that needs more names a *setup* in an HTML comment on
the line just before its fence::

    <!-- readme: api -->
    ```python
    requests.get(f"{api}/studies", auth=MAuth())
    ```

The setup starts what the block needs (a local MAuth service, a protected server),
sets the environment, pre-binds names the block uses, and may check afterwards what the
block built (for example, that the Flask app it defines answers signed requests). The
setups are the functions in ``SETUPS`` below; each docstring lists the names it binds.
``pytest`` is special: the block is saved as a test module and run by pytest in a
subprocess, with this package's pytest plugin (its fixtures), and must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mauth_client.config import ENV_NAMES
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, serve_wsgi

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

_BLOCK = re.compile(r"```python\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!-- readme: ([a-z_]+) -->\n$")


@dataclass
class Block:
    line: int
    section: str
    setup: str | None
    code: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"L{self.line}-{slug}"


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()]
        line = before.count("\n") + 1
        sections = re.findall(r"^## (.+)$", before, re.M)
        mark = _MARK.search(before[-80:])
        blocks.append(
            Block(line, sections[-1] if sections else "top", mark and mark.group(1), match.group(1))
        )
    return blocks


BLOCKS = readme_blocks(README.read_text())


# --- setups -------------------------------------------------------------------------------


@dataclass
class Context:
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    stack: ExitStack


#: A setup yields the names to pre-bind, then receives the namespace after the block ran.
Setup = Callable[[Context], Generator[dict[str, Any], dict[str, Any], None]]


def _identity(ctx: Context) -> tuple[LocalMAuthService, AppIdentity, AppIdentity]:
    """A running local MAuth service; "this app" (in the environment) and another app."""
    for name in ENV_NAMES:
        ctx.monkeypatch.delenv(name, raising=False)
    service = ctx.stack.enter_context(LocalMAuthService())
    me, caller = service.new_app(), service.new_app()
    ctx.monkeypatch.setenv("APP_UUID", me.app_uuid)
    ctx.monkeypatch.setenv("MAUTH_PRIVATE_KEY", me.private_key)
    ctx.monkeypatch.setenv("MAUTH_URL", service.url)
    ctx.monkeypatch.setenv("MAUTH_SIGN_VERSIONS", "v1,v2")
    # Process-wide defaults built from an earlier test's environment are forgotten, as in a
    # freshly started process.
    from mauth_client import authenticator, lambda_authenticator

    authenticator.reset_default_authenticator()
    ctx.monkeypatch.setattr(lambda_authenticator, "_guard", None, raising=False)
    return service, me, caller


def _names(service: LocalMAuthService, me: AppIdentity, caller: AppIdentity) -> dict[str, Any]:
    return {
        "service": service,
        "app_uuid": me.app_uuid,
        "private_key_pem": me.private_key,
        "mauth_url": service.url,
        "caller": caller,
    }


def setup_mauth(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """A local MAuth service; this app's identity in the environment (APP_UUID,
    MAUTH_PRIVATE_KEY, MAUTH_URL, MAUTH_SIGN_VERSIONS=v1,v2). Names: ``service``,
    ``app_uuid``, ``private_key_pem``, ``mauth_url``, ``caller`` (another registered app)."""
    yield _names(*_identity(ctx))


def setup_api(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """``mauth`` (but the key in a file, ``MAUTH_PRIVATE_KEY_FILE``), plus ``api``: the base
    URL of a MAuth-protected Flask service on 127.0.0.1 (``GET``/``POST /studies``).
    Afterwards: the service saw an authentic request from this app."""
    from flask import Flask, g

    service, me, caller = _identity(ctx)
    # As the quick start says: the key in a file named by MAUTH_PRIVATE_KEY_FILE.
    key_file = ctx.tmp_path / "my-app.key"
    key_file.write_text(me.private_key)
    ctx.monkeypatch.delenv("MAUTH_PRIVATE_KEY")
    ctx.monkeypatch.setenv("MAUTH_PRIVATE_KEY_FILE", str(key_file))
    seen: list[str] = []
    app = Flask("readme-api")
    FlaskAuthenticator(app, config=service.config_for(service.new_app()))

    @app.route("/studies", methods=["GET", "POST"])
    @requires_authentication
    def studies() -> Any:
        seen.append(g.mauth_app_uuid)
        return {"studies": [], "caller": g.mauth_app_uuid}

    url = ctx.stack.enter_context(serve_wsgi(app))
    yield {**_names(service, me, caller), "api": url}
    assert me.app_uuid in seen, seen


def setup_flask(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """``mauth``. Afterwards: the block's ``app`` answers ``GET /studies`` signed by
    ``caller`` with 200, and unsigned with 401."""
    service, me, caller = _identity(ctx)
    namespace = yield _names(service, me, caller)
    with serve_wsgi(namespace["app"]) as url:
        auth = MAuth(caller.app_uuid, caller.private_key, "v2")
        signed = requests.get(f"{url}/studies", auth=auth, timeout=30)
        assert signed.status_code == 200, signed.text
        assert signed.json() == {"caller": caller.app_uuid}
        assert requests.get(f"{url}/studies", timeout=30).status_code == 401


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def setup_web_apps(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """``mauth``, plus ``wsgi_app`` and ``asgi_app`` (apps answering "hello") and
    ``starlette_app`` (a ``Starlette()``). Afterwards: the wrapped WSGI app refuses an
    unsigned request (401) and lets ``/app_status`` through."""
    from starlette.applications import Starlette
    from werkzeug.test import Client

    names = _names(*_identity(ctx))
    names.update(wsgi_app=_wsgi_app, asgi_app=_asgi_app, starlette_app=Starlette())
    namespace = yield names
    client = Client(namespace["wsgi_app"])
    assert client.get("/studies").status_code == 401
    assert client.get("/app_status").status_code == 200


def setup_signed_request(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """``mauth``, plus a request ``caller`` signed (V1 and V2): ``method`` ("POST"),
    ``url`` ("/orders?x=1"), ``headers`` and ``request_headers`` (its MAuth headers),
    ``body`` and ``body_bytes`` (its body), and ``event`` (the same request as an API
    Gateway HTTP API event)."""
    service, me, caller = _identity(ctx)
    body = b'{"order": 1}'
    headers = Signer(caller.app_uuid, caller.private_key, "v1,v2").signed_headers(
        RequestSignable(method="POST", url="/orders?x=1", body=body)
    )
    event = {
        "version": "2.0",
        "rawPath": "/orders",
        "rawQueryString": "x=1",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {"http": {"method": "POST"}},
        "body": body.decode(),
        "isBase64Encoded": False,
    }
    yield {
        **_names(service, me, caller),
        "method": "POST",
        "url": "/orders?x=1",
        "headers": headers,
        "request_headers": headers,
        "body": body,
        "body_bytes": body,
        "event": event,
    }


def setup_django(ctx: Context) -> Generator[dict[str, Any], dict[str, Any], None]:
    """``mauth``, with Django settings configured. Afterwards: a block's ``MAUTH`` and
    ``MIDDLEWARE`` settings authenticate requests through that middleware; a block's
    ``studies`` view refuses an unsigned request and ``home`` lets it through."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="readme-only", ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[]
        )
        django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory, override_settings
    from django.utils.module_loading import import_string

    service, me, caller = _identity(ctx)
    namespace = yield _names(service, me, caller)
    factory = RequestFactory()
    if "MAUTH" in namespace:
        (middleware_path,) = [m for m in namespace["MIDDLEWARE"] if m.startswith("mauth_client")]
        middleware = import_string(middleware_path)(lambda request: HttpResponse("ok"))
        signed = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/studies")
        )
        with override_settings(MAUTH=namespace["MAUTH"]):
            assert middleware(factory.get("/studies", headers=signed)).status_code == 200
            assert middleware(factory.get("/studies")).status_code == 401
            assert middleware(factory.get("/app_status")).status_code == 200
    if "studies" in namespace:
        assert namespace["studies"](factory.get("/studies")).status_code == 401
        assert namespace["home"](factory.get("/")).status_code == 200


SETUPS: dict[str, Setup] = {
    "mauth": setup_mauth,
    "api": setup_api,
    "flask": setup_flask,
    "web_apps": setup_web_apps,
    "signed_request": setup_signed_request,
    "django": setup_django,
}


# --- the tests ----------------------------------------------------------------------------


def test_the_readme_has_python_blocks_and_every_mark_is_known() -> None:
    text = README.read_text()
    assert len(BLOCKS) == text.count("```python") >= 10
    marks = re.findall(r"<!-- readme: ([a-z_]+) -->", text)
    assert set(marks) <= {*SETUPS, "pytest"}, marks
    # Every mark sits right before a python block (a stray mark would silently do nothing).
    assert len(marks) == sum(block.setup is not None for block in BLOCKS)


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_table_of_contents_lists_every_section() -> None:
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"^- \[(.+)\]\(#([^)]+)\)$", contents, re.M)
    listed = [title for title, _ in entries]
    assert listed == [h for h in headings if h != "Contents"]
    assert all(anchor == _github_anchor(title) for title, anchor in entries), entries


def test_the_block_parser(tmp_path: Path) -> None:
    text = "## One\n\n```python\nx = 1\n```\n\n## Two\n<!-- readme: api -->\n```python\ny\n```\n"
    first, second = readme_blocks(text)
    assert (first.line, first.section, first.setup, first.code) == (3, "One", None, "x = 1\n")
    assert (second.line, second.section, second.setup, second.code) == (9, "Two", "api", "y\n")


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Context]:
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    with ExitStack() as stack:
        yield Context(monkeypatch, tmp_path, stack)


def _run_with_pytest(block: Block, tmp_path: Path) -> None:
    module = tmp_path / "test_readme_snippet.py"
    module.write_text(block.code)
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b[1-9]\d* passed", done.stdout), done.stdout


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block_runs(block: Block, context: Context) -> None:
    if block.setup == "pytest":
        _run_with_pytest(block, context.tmp_path)
        return
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    setup = SETUPS[block.setup](context) if block.setup else None
    if setup is not None:
        namespace.update(next(setup))
    code = compile(block.code, f"README.md line {block.line + 1}", "exec")
    exec(code, namespace)  # the README's own code: running it is the point
    if setup is not None:
        with pytest.raises(StopIteration):
            setup.send(namespace)
