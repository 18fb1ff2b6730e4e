"""Issue 10 item 2: nothing of the body is read before the checks that need no body.

Each attack sends the headers and 1 MiB of a declared 200 MB body to a real server
and expects the answer before the rest is sent; the servers count what the MAuth
layer read. Also: ``max_body_size`` (413 by Content-Length and while streaming), and
remote mode never builds an authentication ticket for such a request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import django
import pytest
from django.conf import settings

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

from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings
from flask import Flask, request

from mauth_client.flask_authenticator import FlaskAuthenticator
from mauth_client.middlewares import MAuthASGIMiddleware, MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity

from ..servers import uvicorn_server, werkzeug_server
from .rawhttp import MIB, send_partial

read_by_app: list[int] = []


def counting_wsgi(inner: Callable[..., Any], counter: list[int]) -> Callable[..., Any]:
    """The server side of the measurement: counts bytes read from ``wsgi.input``."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        stream = environ["wsgi.input"]
        counter.append(0)

        class Counting:
            def read(self, *args: Any) -> bytes:
                data: bytes = stream.read(*args)
                counter[-1] += len(data)
                return data

            def readline(self, *args: Any) -> bytes:
                data: bytes = stream.readline(*args)
                counter[-1] += len(data)
                return data

            def __iter__(self) -> Iterator[bytes]:
                return iter(self.readline, b"")

        environ["wsgi.input"] = Counting()
        return inner(environ, start_response)

    return app


async def lifespan(receive: Any, send: Any) -> None:
    """The minimal lifespan protocol, for uvicorn's lifespan="on"."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def counting_asgi(app: Any, received: list[int]) -> Any:
    """The ASGI side of the measurement: notes the size of each body message ``app``
    receives (and answers ``lifespan`` itself)."""

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return

        async def counted() -> Any:
            message = await receive()
            received.append(len(message.get("body", b"")))
            return message

        await app(scope, counted, send)

    return counting


def echo_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"reached"]


def signed_headers(identity: AppIdentity, method: str, target: str, **at: Any) -> dict[str, str]:
    signer = Signer(identity.app_uuid, identity.private_key, "v2")
    return signer.signed_headers(RequestSignable(method=method, url=target, body=b""), at or None)


def hostile_headers(service: LocalMAuthService) -> dict[str, dict[str, str]]:
    """Requests that must be refused before their body is read."""
    stranger = generate_identity()  # UUID-shaped, not registered: one key lookup, a 404
    registered = service.new_app()
    return {
        "unsigned": {},
        "garbage": {"MCC-Authentication": "MWSV2 nonsense;", "MCC-Time": "1"},
        "unknown app": signed_headers(stranger, "POST", "/upload"),
        "too old": signed_headers(registered, "POST", "/upload", time=int(time.time()) - 3600),
    }


@contextmanager
def wsgi_server(kind: str, service: LocalMAuthService, me: AppIdentity, **options: Any):  # type: ignore[no-untyped-def]
    counter: list[int] = []
    if kind == "wsgi":
        app: Any = MAuthWSGIMiddleware(echo_wsgi, config=service.config_for(me), **options)
    elif kind == "flask":
        flask_app = Flask("guarded")

        @flask_app.post("/upload")
        def upload() -> str:
            return f"reached {len(request.get_data())}"

        FlaskAuthenticator(
            flask_app, config=service.config_for(me), authenticate_all=True, **options
        )
        app = flask_app
    else:
        app = DjangoGuarded()
    with werkzeug_server(counting_wsgi(app, counter)) as base:
        yield base, counter


class DjangoGuarded(WSGIHandler):
    """Django through a real WSGI server (werkzeug), every request through the middleware."""


@pytest.fixture
def django_mauth(service: LocalMAuthService, me: AppIdentity) -> Iterator[dict[str, Any]]:
    options = {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_URL": service.url,
    }
    with override_settings(MAUTH=options, MIDDLEWARE=["mauth_client.django.MAuthMiddleware"]):
        yield options


@pytest.mark.parametrize("kind", ["wsgi", "flask", "django"])
def test_wsgi_adapters_answer_401_before_the_body(
    kind: str, service: LocalMAuthService, me: AppIdentity, django_mauth: dict[str, Any]
) -> None:
    target = "/plain/upload" if kind == "django" else "/upload"
    for name, headers in hostile_headers(service).items():
        with wsgi_server(kind, service, me) as (base, counter):
            answer = send_partial(base, "POST", target, headers, timeout=10)
        assert answer.status == 401, (name, answer.body)
        assert json.loads(answer.body)["errors"]["mauth"], name
        assert answer.sent <= MIB
        assert counter == [0], f"{kind}/{name}: the MAuth layer read {counter} body bytes"


def test_asgi_middleware_answers_401_before_the_body(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never reached")

    middleware = MAuthASGIMiddleware(app, config=service.config_for(me))

    counting = counting_asgi(middleware, received)

    with uvicorn_server(counting) as base:
        for name, headers in hostile_headers(service).items():
            answer = send_partial(base, "POST", "/upload", headers, timeout=10)
            assert answer.status == 401, (name, answer.body)
            assert answer.sent <= MIB
            assert received == [], f"{name}: the middleware received {received}"


# --- max_body_size ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wsgi", "flask"])
def test_413_by_content_length_and_while_streaming_wsgi(
    kind: str, service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    limit = 100_000
    headers = signed_headers(caller, "POST", "/upload")
    with wsgi_server(kind, service, me, max_body_size=limit) as (base, counter):
        declared = send_partial(base, "POST", "/upload", headers, declared=limit + 1, send=0)
        assert declared.status == 413 and counter == [0]
        streamed = send_partial(base, "POST", "/upload", headers, chunked=True, send=4 * limit)
        assert streamed.status == 413
        assert counter[-1] <= limit + 2 * 65536 + 4096  # stopped as soon as it grew past


def test_413_django(
    service: LocalMAuthService, caller: AppIdentity, django_mauth: dict[str, Any]
) -> None:
    limit = 100_000
    headers = signed_headers(caller, "POST", "/plain/upload")
    with override_settings(MAUTH={**django_mauth, "MAUTH_MAX_BODY_SIZE": str(limit)}):
        counter: list[int] = []
        with werkzeug_server(counting_wsgi(DjangoGuarded(), counter)) as base:
            answer = send_partial(base, "POST", "/plain/upload", headers, declared=limit + 1)
    assert answer.status == 413 and counter == [0]


def test_413_asgi(service: LocalMAuthService, me: AppIdentity, caller: AppIdentity) -> None:
    limit = 100_000
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never reached")

    middleware = MAuthASGIMiddleware(app, config=service.config_for(me), max_body_size=limit)

    counting = counting_asgi(middleware, received)

    headers = signed_headers(caller, "POST", "/upload")
    with uvicorn_server(counting) as base:
        declared = send_partial(base, "POST", "/upload", headers, declared=limit + 1, send=0)
        assert declared.status == 413 and received == []
        streamed = send_partial(base, "POST", "/upload", headers, chunked=True, send=8 * limit)
        assert streamed.status == 413
        # It stopped at the first message that took the body past the limit (uvicorn
        # may hand over what it buffered as one large message).
        assert sum(received[:-1]) <= limit


def test_asgi_spools_as_it_receives(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """Never more than the spool threshold in memory: the body is on disk as it comes."""
    import tracemalloc

    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.append(size)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = MAuthASGIMiddleware(app, config=service.config_for(me), spool_threshold=65536)
    body = b"y" * (8 * MIB)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    index = 0

    async def receive() -> dict[str, Any]:
        nonlocal index
        index += 1
        more = index < len(chunks)
        return {"type": "http.request", "body": chunks[index - 1], "more_body": more}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/upload", body=body)
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    import asyncio

    tracemalloc.start()
    try:
        asyncio.run(middleware(scope, receive, send))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent[0]["status"] == 200 and seen == [len(body)]
    assert peak < 3 * MIB, f"peak {peak} bytes for an 8 MiB body"


def test_remote_mode_builds_no_ticket_for_a_refused_request(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    config = service.config_for(me, mauth_mode="remote")
    app = MAuthWSGIMiddleware(echo_wsgi, config=config)
    registered = service.new_app()
    too_old = signed_headers(registered, "POST", "/upload", time=int(time.time()) - 3600)
    service.reset_counters()
    counter: list[int] = []
    with werkzeug_server(counting_wsgi(app, counter)) as base:
        for headers in ({}, too_old):
            answer = send_partial(base, "POST", "/upload", headers, timeout=10)
            assert answer.status == 401
    assert service.calls("authentication_tickets") == 0
    assert counter == [0, 0]
