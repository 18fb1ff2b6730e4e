"""Issue 11 item 7: a request that fails every check does one RSA operation per
signature (not one per variant and version) and logs one WARNING, not one per attempt."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import InauthenticError
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from ..servers import werkzeug_server


class CountingKey:
    """A real RSA public key that counts the RSA operations asked of it."""

    def __init__(self, pem: str) -> None:
        self.key = serialization.load_pem_public_key(pem.encode())
        self.operations = 0

    @property
    def key_size(self) -> int:  # not an RSA operation: the verifier checks signature length
        return self.key.key_size  # type: ignore[union-attr]

    def recover_data_from_signature(self, *args: Any) -> bytes:
        self.operations += 1
        return self.key.recover_data_from_signature(*args)  # type: ignore[union-attr]

    def verify(self, *args: Any) -> None:
        self.operations += 1
        self.key.verify(*args)  # type: ignore[union-attr]


class OneKey:
    """A key source handing out the counting key as is."""

    def __init__(self, key: CountingKey) -> None:
        self.key = key

    def get_public_key(self, app_uuid: str) -> CountingKey:
        return self.key


@pytest.mark.parametrize("target", ["/orders/a%20b/c", "/orders?x=1&y=a%2Fb"])
def test_tampered_v1_v2_request_costs_one_rsa_operation_per_signature(
    caller: AppIdentity, target: str
) -> None:
    key = CountingKey(caller.public_key)
    authenticator = Authenticator(OneKey(key))  # type: ignore[arg-type]
    headers = Signer(caller.app_uuid, caller.private_key, "v1,v2").signed_headers(
        RequestSignable(method="POST", url=target, body=b"original")
    )
    tampered = RequestSignable(method="POST", url=target, body=b"tampered")
    with pytest.raises(InauthenticError):
        authenticator.authenticate(tampered, Signed.from_headers(headers))
    signatures = 1 if "?" in target else 2  # no V1 fallback with a query
    assert key.operations == signatures
    key.operations = 0
    authentic = RequestSignable(method="POST", url=target, body=b"original")
    authenticator.authenticate(authentic, Signed.from_headers(headers))
    assert key.operations == 1


def ok_app(environ: dict[str, object], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


def test_one_warning_per_failed_request(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mauth_client")
    signer = Signer(caller.app_uuid, caller.private_key, "v1,v2")
    with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=service.config_for(me))) as base:
        session = requests.Session()
        for target in ("/a", "/b/c%20d"):  # no query: V2 fails, then V1 is tried too
            headers = signer.signed_headers(
                RequestSignable(method="POST", url=target, body=b"original")
            )
            caplog.clear()
            answer = session.post(base + target, data=b"tampered", headers=headers, timeout=10)
            assert answer.status_code == 401
            warnings = [
                r
                for r in caplog.records
                if r.name == "mauth_client" and r.levelno >= logging.WARNING
            ]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "V1" in warnings[0].getMessage() and "V2" in warnings[0].getMessage()


class RefreshCountingSource(OneKey):
    """A key source that also counts the "has this app's key been rotated?" questions
    asked after a failed signature (and never has a newer key)."""

    def __init__(self, key: CountingKey) -> None:
        super().__init__(key)
        self.refreshes: list[str] = []

    def refresh_public_key(self, app_uuid: str, failed_key: object = None) -> None:
        self.refreshes.append(app_uuid)


def test_v1_fallback_of_the_same_app_does_not_ask_for_its_key_again(
    caller: AppIdentity, me: AppIdentity
) -> None:
    source = RefreshCountingSource(CountingKey(caller.public_key))
    authenticator = Authenticator(source)  # type: ignore[arg-type]
    signed = Signer(caller.app_uuid, caller.private_key, "v1,v2").signed_headers(
        RequestSignable(method="POST", url="/orders", body=b"original")
    )
    tampered = RequestSignable(method="POST", url="/orders", body=b"tampered")
    with pytest.raises(InauthenticError):
        authenticator.authenticate(tampered, Signed.from_headers(signed))
    assert source.refreshes == [caller.app_uuid]  # V2 asked; V1 (same app) did not again
    # A V1 signature of another app is that app's own question.
    other = Signer(me.app_uuid, me.private_key, "v1").signed_headers(
        RequestSignable(method="POST", url="/orders", body=b"original")
    )
    mixed = {**signed, **other}
    source.refreshes.clear()
    with pytest.raises(InauthenticError):
        authenticator.authenticate(tampered, Signed.from_headers(mixed))
    assert source.refreshes == [caller.app_uuid, me.app_uuid]
