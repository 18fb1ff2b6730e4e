"""AWS Lambda: upstream's LambdaAuthenticator and events of API Gateway v1, v2 and ALB."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mauth_client.config import Config
from mauth_client.lambda_authenticator import (
    LambdaAuthenticator,
    authenticate_event,
    request_from_event,
)
from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService


@pytest.fixture
def config(service: LocalMAuthService) -> Config:
    return service.config_for(service.new_app())


def sign(
    caller: AppIdentity, method: str, target: str, body: bytes, versions: str = "v1,v2"
) -> dict[str, str]:
    return Signer(caller.app_uuid, caller.private_key, versions).signed_headers(
        RequestSignable(method=method, url=target, body=body)
    )


def rest_v1_event(headers: dict[str, str], body: bytes, binary: bool) -> dict[str, Any]:
    """API Gateway REST proxy event for https://abc.execute-api.../prod/orders/caf%C3%A9?a=1&a=2&b=x%20y"""
    return {
        "resource": "/orders/{id}",
        "path": "/orders/caf\u00e9",
        "httpMethod": "POST",
        "headers": {k.lower(): v for k, v in headers.items()}
        | {"content-type": "application/octet-stream"},
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {"a": "2", "b": "x y"},
        "multiValueQueryStringParameters": {"a": ["1", "2"], "b": ["x y"]},
        "requestContext": {"stage": "prod", "path": "/prod/orders/caf%C3%A9", "httpMethod": "POST"},
        "body": base64.b64encode(body).decode() if binary else body.decode(),
        "isBase64Encoded": binary,
    }


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_rest_api_v1_event_with_stage(
    config: Config, caller: AppIdentity, binary: bool, versions: str
) -> None:
    body = bytes(range(200)) if binary else b'{"text": "caf\xc3\xa9"}'
    headers = sign(caller, "POST", "/prod/orders/caf%C3%A9?a=1&a=2&b=x%20y", body, versions)
    result = authenticate_event(rest_v1_event(headers, body, binary), config=config)
    assert result.authentic, result.message
    assert (result.status_code, result.app_uuid, result.protocol_version) == (
        200,
        caller.app_uuid,
        int(versions[1]),
    )


def test_event_result_unpacks_like_is_authentic(config: Config, caller: AppIdentity) -> None:
    headers = sign(caller, "POST", "/prod/orders/caf%C3%A9?a=1&a=2&b=x%20y", b"x")
    authentic, status, message = authenticate_event(
        rest_v1_event(headers, b"x", False), config=config
    )
    assert (authentic, status, message) == (True, 200, "")
    unsigned = authenticate_event(rest_v1_event({}, b"x", False), config=config)
    assert unsigned[:2] == (False, 401) and unsigned.app_uuid is None


def test_http_api_v2_event(config: Config, caller: AppIdentity) -> None:
    body = b"\x00\xffbinary"
    headers = sign(caller, "PUT", "/stage/items/%E2%82%AC?z=1&q=a%2Fb", body, "v2")
    event = {
        "version": "2.0",
        "rawPath": "/stage/items/%E2%82%AC",
        "rawQueryString": "z=1&q=a%2Fb",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "http": {"method": "PUT", "path": "/stage/items/\u20ac"},
            "stage": "stage",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
    result = authenticate_event(event, config=config)
    assert result.authentic, result.message
    assert result.app_uuid == caller.app_uuid


def test_alb_event(config: Config, caller: AppIdentity) -> None:
    headers = sign(caller, "GET", "/health/deep?check=a%20b&check=c", b"", "v2")
    event = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:..."}},
        "httpMethod": "GET",
        "path": "/health/deep",
        "multiValueQueryStringParameters": {"check": ["a%20b", "c"]},  # ALB leaves them encoded
        "multiValueHeaders": {k.lower(): [v] for k, v in headers.items()},
        "body": "",
        "isBase64Encoded": False,
    }
    result = authenticate_event(event, config=config)
    assert result.authentic, result.message


def test_tampered_event_is_401(config: Config, caller: AppIdentity) -> None:
    headers = sign(caller, "POST", "/prod/orders/caf%C3%A9?a=1&a=2&b=x%20y", b"good")
    result = authenticate_event(rest_v1_event(headers, b"evil", False), config=config)
    assert (result.authentic, result.status_code, result.app_uuid) == (False, 401, None)
    assert "Signature verification failed" in result.message


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("not an event", "not a JSON object"),
        ({"foo": 1}, "not from API Gateway or an ALB"),
        ({"httpMethod": None, "path": "/"}, "no HTTP method"),
        ({"httpMethod": "POST", "path": "/", "body": "!!!", "isBase64Encoded": True}, "not base64"),
    ],
)
def test_malformed_events_are_401(config: Config, event: Any, message: str) -> None:
    result = authenticate_event(event, config=config)
    assert (result.authentic, result.status_code) == (False, 401)
    assert message in result.message


def test_request_from_event_prefers_the_stage_path() -> None:
    event = rest_v1_event({}, b"", False)
    assert request_from_event(event).path == "/prod/orders/caf%C3%A9"
    del event["requestContext"]["path"]
    assert request_from_event(event).path == "/orders/caf\u00e9"  # custom domain: no stage


def test_upstream_lambda_authenticator(config: Config, caller: AppIdentity) -> None:
    body = b'{"x": 1}'
    url = "https://api.example.com/prod/things?b=2&a=1"
    headers = sign(caller, "POST", url, body)
    authenticator = LambdaAuthenticator("POST", url, headers, body.decode(), config=config)
    assert authenticator.is_authentic() == (True, 200, "")
    assert authenticator.get_app_uuid() == caller.app_uuid
    assert LambdaAuthenticator("POST", url, headers, "tampered", config=config).is_authentic()[
        :2
    ] == (False, 401)
    unsigned = LambdaAuthenticator("GET", url, {}, None, config=config)
    # "" when absent, as upstream (issue 9: Signed fields are "" rather than None)
    assert unsigned.is_authentic()[:2] == (False, 401) and unsigned.get_app_uuid() == ""
