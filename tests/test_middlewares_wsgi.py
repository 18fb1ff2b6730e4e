"""The WSGI middleware through werkzeug on 127.0.0.1, and directly for server quirks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.requests_mauth import MAuth
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService
from mauth_client.wsgi_target import request_target

from .servers import werkzeug_server

seen: list[dict[str, Any]] = []


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    if length:
        body = stream.read(length)
    else:  # PEP 3333: read to EOF only when the server says the stream ends
        body = stream.read() if environ.get("wsgi.input_terminated") else b""
    seen.append({"input_type": type(stream).__name__})
    document = {
        "app_uuid": environ.get("mauth.app_uuid"),
        "authentic": environ.get("mauth.authentic"),
        "version": environ.get("mauth.protocol_version"),
        "body_len": len(body),
        "body_head": body[:16].hex(),
        "path_info": environ["PATH_INFO"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(document).encode()]


def wrap(service: LocalMAuthService, me: AppIdentity, **options: Any) -> MAuthWSGIMiddleware:
    return MAuthWSGIMiddleware(echo_app, config=service.config_for(me), **options)


@pytest.fixture
def url(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    with werkzeug_server(wrap(service, me, exempt={"/app_status", "/public/*"})) as base:
        yield base


def test_authentic_request_reaches_the_app_with_its_body(url: str, caller: AppIdentity) -> None:
    body = bytes(range(256)) * 40
    answer = requests.post(
        f"{url}/things",
        data=body,
        auth=MAuth(caller.app_uuid, caller.private_key, "v2"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "app_uuid": caller.app_uuid,
        "authentic": True,
        "version": 2,
        "body_len": len(body),
        "body_head": body[:16].hex(),
        "path_info": "/things",
    }


@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_percent_encoded_non_ascii_path(url: str, caller: AppIdentity, versions: str) -> None:
    answer = requests.get(
        f"{url}/caf%C3%A9/%E2%82%AC?k=%E2%82%AC",
        auth=MAuth(caller.app_uuid, caller.private_key, versions),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["path_info"] == "/caf\u00e9/\u20ac".encode().decode("latin-1")


def test_unsigned_and_head(url: str) -> None:
    answer = requests.get(f"{url}/things", timeout=10)
    assert answer.status_code == 401 and answer.headers["Content-Type"] == "application/json"
    assert "No mAuth signature" in answer.json()["errors"]["mauth"][0]
    head = requests.head(f"{url}/things", timeout=10)
    assert head.status_code == 401 and head.content == b""


def test_exempt_paths_and_prefixes(url: str) -> None:
    assert requests.get(f"{url}/app_status", timeout=10).status_code == 200
    assert requests.get(f"{url}/public/anything", timeout=10).status_code == 200
    assert requests.get(f"{url}/publicity", timeout=10).status_code == 401


def test_should_authenticate(service: LocalMAuthService, me: AppIdentity) -> None:
    app = wrap(
        service, me, should_authenticate=lambda environ: environ["REQUEST_METHOD"] != "OPTIONS"
    )
    with werkzeug_server(app) as base:
        assert requests.options(f"{base}/x", timeout=10).status_code == 200
        assert requests.get(f"{base}/x", timeout=10).status_code == 401


def test_allow_list(service: LocalMAuthService, me: AppIdentity, caller: AppIdentity) -> None:
    with werkzeug_server(wrap(service, me, app_uuids={"someone-else"})) as base:
        answer = requests.get(
            f"{base}/x", auth=MAuth(caller.app_uuid, caller.private_key), timeout=10
        )
    assert answer.status_code == 403


def test_large_body_spools_to_a_file(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    seen.clear()
    body = b"z" * 300_000
    with werkzeug_server(wrap(service, me, spool_threshold=64 * 1024)) as base:
        answer = requests.put(
            f"{base}/big",
            data=body,
            auth=MAuth(caller.app_uuid, caller.private_key, "v1,v2"),
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_len"] == len(body)
    assert seen[-1]["input_type"] != "BytesIO"  # the app read it from the temporary file


def test_chunked_request_body(url: str, caller: AppIdentity) -> None:
    # A generator body with no auth-time length: requests sends it; the middleware reads to EOF.
    signer = Signer(caller.app_uuid, caller.private_key, "v2")
    headers = signer.signed_headers(RequestSignable(method="POST", url="/c", body=b"abcdef"))
    answer = requests.post(f"{url}/c", data=iter([b"abc", b"def"]), headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_len"] == 6


def test_service_down_is_500(me: AppIdentity, caller: AppIdentity) -> None:
    with LocalMAuthService() as service:
        config = service.config_for(me, retry_backoff=0.01)
    with werkzeug_server(MAuthWSGIMiddleware(echo_app, config=config)) as base:
        answer = requests.get(
            f"{base}/x", auth=MAuth(caller.app_uuid, caller.private_key), timeout=30
        )
    assert answer.status_code == 500
    assert answer.json()["errors"]["mauth"]


# --- Directly, for what no well-behaved server sends ------------------------------------


def call(app: MAuthWSGIMiddleware, environ: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    base = {"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "wsgi.input": io.BytesIO(b"")}
    base.update(environ)
    body = b"".join(app(base, lambda s, h, *a: status.append(s)))
    return status[0], body


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CONTENT_LENGTH": "ten"}, "not a number"),
        ({"CONTENT_LENGTH": "-1"}, "negative"),
        ({"CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"short")}, "before its Content-Length"),
    ],
)
def test_bad_bodies_are_401_json(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    environ: dict[str, Any],
    message: str,
) -> None:
    # Signed (V2, body unknown to the pre-checks): an unsigned request is refused
    # before its body is read, so it would never reach these body errors.
    status, body = call(wrap(service, me), {**signed_environ(caller), **environ})
    assert status.startswith("401")
    assert message in json.loads(body)["errors"]["mauth"][0]


class Exploding(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise ConnectionResetError("client went away")


def signed_environ(caller: AppIdentity) -> dict[str, str]:
    """Headers of a V2 signature that passes every check needing no body."""
    headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/x", body=b"other")
    )
    return {
        "HTTP_MCC_AUTHENTICATION": headers["MCC-Authentication"],
        "HTTP_MCC_TIME": headers["MCC-Time"],
    }


def test_body_that_fails_to_read_is_401(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    status, body = call(
        wrap(service, me),
        {**signed_environ(caller), "CONTENT_LENGTH": "5", "wsgi.input": Exploding()},
    )
    assert status.startswith("401")
    assert "reading the request body failed: ConnectionResetError" in body.decode()


def test_request_target_without_raw_uri_recovers_the_bytes() -> None:
    # PEP 3333: PATH_INFO is the decoded path as latin-1 text.
    environ = {
        "PATH_INFO": "/caf\u00e9 x".encode().decode("latin-1"),
        "QUERY_STRING": "a=%E2%82%AC",
    }
    assert request_target(environ) == ("/caf%C3%A9%20x", "a=%E2%82%AC")
    assert request_target({"RAW_URI": "/a%2Fb?q=1", "PATH_INFO": "/a/b"}) == ("/a%2Fb", "q=1")
    assert request_target({"REQUEST_URI": "/u?v#f"}) == ("/u", "v")
    assert request_target({}) == ("/", "")


@pytest.mark.parametrize(
    "environ",
    [
        {"PATH_INFO": "/\xff\xfe\x00", "QUERY_STRING": "%zz&\xff=%&=="},
        {"RAW_URI": "/%ff%fe?%", "PATH_INFO": "/\xff\xfe"},
        {
            "PATH_INFO": "/\u20ac-not-latin-1",
            "HTTP_MCC_AUTHENTICATION": "MWSV2 a:b;",
            "HTTP_MCC_TIME": "1",
        },
    ],
)
def test_undecodable_paths_and_queries_are_401(
    service: LocalMAuthService, me: AppIdentity, environ: dict[str, Any]
) -> None:
    status, body = call(wrap(service, me), {"REQUEST_METHOD": "GET", **environ})
    assert status.startswith("401")
    assert json.loads(body)["errors"]["mauth"]


def test_concurrent_first_requests_share_one_key_fetch(
    service: LocalMAuthService, me: AppIdentity
) -> None:
    # A freshly started app hit by a burst: one authenticator, so one fetch per caller.
    import threading

    callers = [service.new_app() for _ in range(3)]
    app = wrap(service, me)
    service.latency = 0.2
    barrier = threading.Barrier(30)
    statuses: list[str] = []

    def hit(i: int) -> None:
        caller = callers[i % 3]
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/burst")
        )
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/burst",
            "wsgi.input": io.BytesIO(b""),
            **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
        }
        barrier.wait()
        statuses.append(call(app, environ)[0])

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == ["200 OK"] * 30
    assert service.calls("security_tokens") == 3
