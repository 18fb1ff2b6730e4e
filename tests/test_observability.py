"""Events, Prometheus metrics (a real CollectorRegistry) and OpenTelemetry spans (the
SDK's in-memory exporter), from requests to a real WSGI server and MAuth service."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from mauth_client import observability
from mauth_client.authenticator import Authenticator
from mauth_client.key_source import StaticKeySource
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.observability import Event
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from .conftest import REPO
from .servers import werkzeug_server

RULES = [("*", "/admin/*", "admin")]


def ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    unsubscribe = observability.subscribe(seen.append)
    try:
        yield seen
    finally:
        unsubscribe()


def auth(identity: AppIdentity, versions: str = "v2") -> MAuth:
    return MAuth(identity.app_uuid, identity.private_key, versions)


def of_kind(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event.kind == kind]


def test_one_event_per_attempt_with_each_outcome(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, events: list[Event]
) -> None:
    unknown = AppIdentity(
        app_uuid="0f0f0f0f-0000-4000-8000-00000000dead",
        private_key=caller.private_key,
        public_key=caller.public_key,
    )

    def lookup(app_uuid: str) -> list[str]:
        if app_uuid == me.app_uuid:
            raise RuntimeError("authorization service down")
        return []

    config = service.config_for(me, permissions=lookup)
    with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=config, rules=RULES)) as url:
        assert requests.get(f"{url}/a", auth=auth(caller), timeout=10).status_code == 200
        assert requests.get(f"{url}/b", auth=auth(caller, "v1"), timeout=10).status_code == 200
        assert requests.get(f"{url}/c", timeout=10).status_code == 401
        assert requests.get(f"{url}/admin/d", auth=auth(caller), timeout=10).status_code == 403
        assert requests.get(f"{url}/e", auth=auth(unknown), timeout=10).status_code == 401
        assert requests.get(f"{url}/f", auth=auth(me), timeout=10).status_code == 500
    attempts = of_kind(events, "authentication")
    assert [(e.outcome, e.app_uuid, e.protocol_version) for e in attempts] == [
        ("authentic", caller.app_uuid, "v2"),
        ("authentic", caller.app_uuid, "v1"),
        ("inauthentic", None, None),
        ("forbidden", caller.app_uuid, "v2"),
        ("inauthentic", unknown.app_uuid, "v2"),  # the app UUID the request claims
        ("error", me.app_uuid, "v2"),
    ]
    assert attempts[0].reason == ""
    assert "No mAuth signature" in attempts[2].reason
    assert "'admin'" in attempts[3].reason
    assert all(0 < e.duration < 30 for e in attempts)
    fetches = of_kind(events, "key_fetch")
    assert [(e.outcome, e.app_uuid) for e in fetches] == [
        ("fetched", caller.app_uuid),
        ("not_found", unknown.app_uuid),
        ("fetched", me.app_uuid),
    ]


def test_key_fetch_error_event(me: AppIdentity, caller: AppIdentity, events: list[Event]) -> None:
    with LocalMAuthService(fail_status=503) as failing:
        failing.add_app(me.app_uuid, me.public_key)
        failing.add_app(caller.app_uuid, caller.public_key)
        config = failing.config_for(me, retries=0)
        with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=config)) as url:
            assert requests.get(f"{url}/a", auth=auth(caller), timeout=10).status_code == 500
    fetches = of_kind(events, "key_fetch")
    assert [(e.outcome, e.app_uuid) for e in fetches] == [("error", caller.app_uuid)]
    assert "503" in fetches[0].reason
    assert [e.outcome for e in of_kind(events, "authentication")] == ["error"]


def test_raising_listener_is_logged_and_the_request_goes_on(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    events: list[Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: Event) -> None:
        raise ValueError("listener bug")

    unsubscribe = observability.subscribe(broken)
    try:
        app = MAuthWSGIMiddleware(ok_app, config=service.config_for(me))
        with werkzeug_server(app) as url, caplog.at_level(logging.ERROR, logger="mauth_client"):
            answer = requests.get(f"{url}/a", auth=auth(caller), timeout=10)
    finally:
        unsubscribe()
    assert answer.status_code == 200 and answer.text == "ok"
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)
    assert [e.outcome for e in of_kind(events, "authentication")] == [
        "authentic"
    ]  # others still told


def test_unsubscribe_stops_events_and_is_idempotent() -> None:
    seen: list[Event] = []
    unsubscribe = observability.subscribe(seen.append)
    observability.emit(Event("authentication", "authentic"))
    unsubscribe()
    unsubscribe()
    observability.emit(Event("authentication", "authentic"))
    assert len(seen) == 1
    with pytest.raises(TypeError):
        observability.subscribe("not callable")  # type: ignore[arg-type]


def test_upstream_is_authentic_reports_an_event(caller: AppIdentity, events: list[Event]) -> None:
    """The compat entry point bypasses the guard, so the Authenticator reports it."""
    authenticator = Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
    signable = RequestSignable(method="GET", url="/x", body=b"")
    headers = Signer(caller.app_uuid, caller.private_key, "v1").signed_headers(signable)
    assert authenticator.is_authentic(signable, Signed.from_headers(headers)) == (True, 200, "")
    tampered = RequestSignable(method="GET", url="/y", body=b"")
    assert authenticator.is_authentic(tampered, Signed.from_headers(headers))[1] == 401
    assert [(e.outcome, e.protocol_version) for e in events] == [
        ("authentic", "v1"),
        ("inauthentic", "v1"),
    ]
    # authenticate() itself, the building block the guard calls, reports nothing.
    authenticator.authenticate(signable, Signed.from_headers(headers))
    assert len(events) == 2


# --- Prometheus -------------------------------------------------------------------------


def test_prometheus_metrics(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    registry = CollectorRegistry()
    stop = observability.prometheus(registry)
    assert observability.prometheus(registry) is stop  # not registered twice
    try:
        config = service.config_for(me, permissions={caller.app_uuid: []})
        with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=config, rules=RULES)) as url:
            for _ in range(3):
                requests.get(f"{url}/a", auth=auth(caller), timeout=10)
            requests.get(f"{url}/a", auth=auth(caller, "v1"), timeout=10)
            requests.get(f"{url}/a", timeout=10)
            requests.get(f"{url}/admin/x", auth=auth(caller), timeout=10)
        value = registry.get_sample_value
        assert value("mauth_authentications_total", {"outcome": "authentic", "version": "v2"}) == 3
        assert value("mauth_authentications_total", {"outcome": "authentic", "version": "v1"}) == 1
        assert (
            value("mauth_authentications_total", {"outcome": "inauthentic", "version": "none"}) == 1
        )
        assert value("mauth_authentications_total", {"outcome": "forbidden", "version": "v2"}) == 1
        assert value("mauth_authentication_duration_seconds_count") == 6
        assert value("mauth_authentication_duration_seconds_sum") > 0
        assert value("mauth_authentication_duration_seconds_bucket", {"le": "+Inf"}) == 6
        assert value("mauth_key_fetches_total", {"outcome": "fetched"}) == 1
    finally:
        stop()
    assert registry.get_sample_value("mauth_key_fetches_total", {"outcome": "fetched"}) is None
    stop()  # harmless twice
    again = observability.prometheus(registry)  # can be installed again after stopping
    again()


# --- OpenTelemetry ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def span_exporter() -> Any:
    """The SDK's in-memory exporter on the global tracer provider (set once per process)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_spans(
    span_exporter: Any, service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    span_exporter.clear()
    app = MAuthWSGIMiddleware(ok_app, config=service.config_for(me))
    with werkzeug_server(app) as url:
        assert requests.get(f"{url}/a", auth=auth(caller), timeout=10).status_code == 200
        assert requests.get(f"{url}/a", timeout=10).status_code == 401
    spans = span_exporter.get_finished_spans()
    attempts = [s for s in spans if s.name == "mauth.authenticate"]
    fetches = [s for s in spans if s.name == "mauth.key_fetch"]
    assert [dict(s.attributes) for s in attempts] == [
        {
            "mauth.outcome": "authentic",
            "mauth.app_uuid": caller.app_uuid,
            "mauth.protocol_version": "v2",
        },
        {"mauth.outcome": "inauthentic"},
    ]
    assert len(fetches) == 1
    assert dict(fetches[0].attributes) == {
        "mauth.app_uuid": caller.app_uuid,
        "mauth.outcome": "fetched",
    }
    # The pre-check fetched the key before the body was read, so before the attempt's
    # span: with no request span around them both are roots here (see the ASGI test).
    assert fetches[0].end_time <= attempts[0].start_time


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_nothing_is_traced_or_imported_without_a_tracer_provider() -> None:
    """Without a provider the hook is a dictionary lookup (OpenTelemetry never imported
    by us) or one provider type check (imported, no provider configured)."""
    code = """
import json, sys
from mauth_client import observability
from mauth_client.authenticator import Authenticator
from mauth_client.key_source import StaticKeySource
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import generate_identity
me = generate_identity()
auth = Authenticator(StaticKeySource({me.app_uuid: me.public_key}))
s = RequestSignable(method="GET", url="/x", body=b"")
h = Signer(me.app_uuid, me.private_key, "v2").signed_headers(s)
ok = auth.is_authentic(s, Signed.from_headers(h))[0]
imported = "opentelemetry.trace" in sys.modules
import opentelemetry.trace
print(json.dumps([ok, imported, observability.tracer() is None, observability.active()]))
"""
    assert json.loads(_run(code)) == [True, False, True, False]


def test_asgi_span_is_a_child_of_the_request_span(
    span_exporter: Any, service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """The key lookup and the check may run in worker threads; their spans still join
    the request's trace."""
    import httpx
    from opentelemetry import trace
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mauth_client.httpx_mauth import MAuthHttpx
    from mauth_client.middlewares import MAuthASGIMiddleware

    from .servers import uvicorn_server

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = MAuthASGIMiddleware(
        Starlette(routes=[Route("/a", hello)]), config=service.config_for(me)
    )

    async def traced(scope: Any, receive: Any, send: Any) -> None:  # as ASGI instrumentation does
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        with trace.get_tracer("test").start_as_current_span("request"):
            await inner(scope, receive, send)

    span_exporter.clear()
    signer = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    with uvicorn_server(traced) as url:
        assert httpx.get(f"{url}/a", auth=signer, timeout=10).status_code == 200
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    request_span, attempt = spans["request"], spans["mauth.authenticate"]
    assert attempt.parent is not None
    assert attempt.parent.span_id == request_span.context.span_id
    fetch = spans["mauth.key_fetch"]
    assert fetch.parent is not None  # fetched by the pre-check, before the body
    assert fetch.parent.span_id == request_span.context.span_id
    assert fetch.context.trace_id == attempt.context.trace_id


def test_prometheus_without_prometheus_client_names_the_extra() -> None:
    code = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
from mauth_client import observability
try:
    observability.prometheus()
except ModuleNotFoundError as exc:
    print(exc.name, exc, sep="|")
"""
    assert _run(code) == (
        "prometheus_client|mauth_client.observability.prometheus needs prometheus_client, "
        "which is not installed: pip install 'mauth-client[prometheus]'"
    )
