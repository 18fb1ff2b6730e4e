"""Every case of tests/vectors: strings to sign, signatures and headers, both ways."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mauth_client.keys import load_public_key
from mauth_client.signable import RequestSignable, ResponseSignable, Signable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.verifier import verify_v1, verify_v2

from .conftest import VECTORS, load_vectors

REQUESTS = load_vectors("requests.json")
RESPONSES = load_vectors("responses.json")
PRIVATE_KEYS = ["signing-key.pem", "signing-key.pkcs8.pem"]
PUBLIC_KEYS = ["signing-key.pub.pem", "signing-key.rsapub.pem"]


def _body(case: dict[str, Any]) -> bytes | str | None:
    if "body_base64" in case:
        return base64.b64decode(case["body_base64"])
    body: str | None = case["body"]
    return body


def _signable(case: dict[str, Any]) -> Signable:
    if "status_code" in case:
        return ResponseSignable(case["status_code"], _body(case))
    return RequestSignable(method=case["method"], url=case["url"], body=_body(case))


ALL_CASES = [
    pytest.param(REQUESTS["config"], c, id=f"request-{c['name']}") for c in REQUESTS["cases"]
] + [pytest.param(RESPONSES["config"], c, id=f"response-{c['name']}") for c in RESPONSES["cases"]]


@pytest.mark.parametrize(("config", "case"), ALL_CASES)
def test_strings_to_sign(config: dict[str, Any], case: dict[str, Any]) -> None:
    attributes = {"app_uuid": config["app_uuid"], "time": config["time"]}
    signable = _signable(case)
    assert signable.string_to_sign_v1(attributes) == base64.b64decode(
        case["string_to_sign_v1_base64"]
    )
    assert signable.string_to_sign_v2(attributes) == case["string_to_sign_v2"].encode()


@pytest.mark.parametrize("private_key", PRIVATE_KEYS)
@pytest.mark.parametrize(("config", "case"), ALL_CASES)
def test_signatures_and_headers(
    config: dict[str, Any], case: dict[str, Any], private_key: str
) -> None:
    signer = Signer(config["app_uuid"], (VECTORS / private_key).read_text(), "v1,v2")
    attributes = {"app_uuid": config["app_uuid"], "time": config["time"]}
    signable = _signable(case)
    assert signer.signature_v1(signable.string_to_sign_v1(attributes)) == case["signature_v1"]
    assert signer.signature_v2(signable.string_to_sign_v2(attributes)) == case["signature_v2"]
    # A fresh signable, so the headers come from the streaming path, not a cached one.
    assert signer.signed_headers(_signable(case), {"time": config["time"]}) == case["headers"]


@pytest.mark.parametrize("public_key", PUBLIC_KEYS)
@pytest.mark.parametrize(("config", "case"), ALL_CASES)
def test_verification_of_vector_headers(
    config: dict[str, Any], case: dict[str, Any], public_key: str
) -> None:
    key = load_public_key((VECTORS / public_key).read_bytes())
    signed = Signed.from_headers(case["headers"])
    assert signed.v1 is not None and signed.v2 is not None
    assert signed.protocol_version() == 2
    assert signed.app_uuid == config["app_uuid"]
    signable = _signable(case)
    digest = signable.v1_hexdigest(signed.v1.app_uuid or "", signed.v1.time)
    assert digest is not None
    assert verify_v1(key, signed.v1.signature, digest)
    assert verify_v2(
        key, signed.v2.signature, signable.v2_string(config["app_uuid"], signed.v2.time)
    )
    # The other version's signature, or another time, must not pass.
    assert not verify_v1(key, signed.v2.signature, digest)
    assert not verify_v2(key, signed.v2.signature, signable.v2_string(config["app_uuid"], 1))
