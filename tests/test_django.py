"""Django's middleware and decorators through Django's own test client."""

from __future__ import annotations

from collections.abc import Iterator
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

from django.test import Client, override_settings

from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService


@pytest.fixture
def mauth_settings(service: LocalMAuthService) -> Iterator[dict[str, Any]]:
    me = service.new_app()
    options = {
        "APP_UUID": me.app_uuid,
        "MAUTH_PRIVATE_KEY": me.private_key,
        "MAUTH_URL": service.url,
    }
    with override_settings(MAUTH=options):
        yield options


def signed(
    caller: AppIdentity, method: str, target: str, body: bytes = b"", versions: str = "v1,v2"
) -> dict[str, str]:
    return Signer(caller.app_uuid, caller.private_key, versions).signed_headers(
        RequestSignable(method=method, url=target, body=body)
    )


@pytest.mark.parametrize(("versions", "expected"), [("v1", 1), ("v2", 2)])
def test_required(
    mauth_settings: dict[str, Any], caller: AppIdentity, versions: str, expected: int
) -> None:
    body = bytes(range(256))
    target = "/required/caf%C3%A9?q=%E2%82%AC"
    answer = Client().post(
        target,
        data=body,
        content_type="application/octet-stream",
        headers=signed(caller, "POST", target, body, versions),
    )
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "app_uuid": caller.app_uuid,
        "version": expected,
        "body_len": 256,
        "path": "/required/caf\u00e9",
    }


def test_required_rejects_unsigned_and_tampered(
    mauth_settings: dict[str, Any], caller: AppIdentity
) -> None:
    answer = Client().get("/required/x")
    assert answer.status_code == 401 and answer["Content-Type"] == "application/json"
    assert "No mAuth signature" in answer.json()["errors"]["mauth"][0]
    headers = signed(caller, "POST", "/required/x", b"good")
    tampered = Client().post(
        "/required/x", data=b"evil", content_type="text/plain", headers=headers
    )
    assert tampered.status_code == 401


def test_optional(mauth_settings: dict[str, Any], caller: AppIdentity) -> None:
    assert Client().get("/optional").json()["app_uuid"] is None
    answer = Client().get("/optional", headers=signed(caller, "GET", "/optional"))
    assert answer.json()["app_uuid"] == caller.app_uuid
    bad = {
        k: v.replace("MWSV2 ", "MWSV2 x")
        for k, v in signed(caller, "GET", "/optional", versions="v2").items()
    }
    assert Client().get("/optional", headers=bad).json()["app_uuid"] is None


def test_optional_lets_through_when_the_service_is_down(caller: AppIdentity) -> None:
    with LocalMAuthService() as service:
        me = service.new_app()
        options = {
            "APP_UUID": me.app_uuid,
            "MAUTH_PRIVATE_KEY": me.private_key,
            "MAUTH_URL": service.url,
        }
    with override_settings(MAUTH=options):
        answer = Client().get("/optional", headers=signed(caller, "GET", "/optional"))
        assert answer.status_code == 200 and answer.json()["app_uuid"] is None
        assert (
            Client().get("/required/x", headers=signed(caller, "GET", "/required/x")).status_code
            == 500
        )


def test_middleware_with_exemptions_and_allow_list(
    mauth_settings: dict[str, Any], caller: AppIdentity
) -> None:
    options = {**mauth_settings, "EXEMPT": ["/plain/health"]}
    with override_settings(MAUTH=options, MIDDLEWARE=["mauth_client.django.MAuthMiddleware"]):
        assert Client().get("/plain/health").status_code == 200
        assert Client().get("/plain/x").status_code == 401
        answer = Client().get("/plain/x", headers=signed(caller, "GET", "/plain/x"))
        assert answer.status_code == 200 and answer.json()["app_uuid"] == caller.app_uuid
    with override_settings(
        MAUTH={**options, "APP_UUIDS": ["someone-else"]},
        MIDDLEWARE=["mauth_client.django.MAuthMiddleware"],
    ):
        assert (
            Client().get("/plain/x", headers=signed(caller, "GET", "/plain/x")).status_code == 403
        )
