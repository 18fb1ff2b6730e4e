"""A signature has one spelling: a V1 or V2 signature whose first byte is 0 is refused
when sent without that byte (OpenSSL's public decrypt would take the shorter input)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mauth_client.authenticator import Authenticator
from mauth_client.key_source import StaticKeySource
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import generate_identity
from mauth_client.verifier import recover_v1, recover_v2, verify_v1, verify_v2

IDENT = generate_identity()
UUID = IDENT.app_uuid


def _zero_led(version: str) -> tuple[RequestSignable, dict[str, str], bytes]:
    """A request whose ``version`` signature starts with a zero byte (about 1 in 256)."""
    signer = Signer(UUID, IDENT.private_key, version)
    header = "X-MWS-Authentication" if version == "v1" else "MCC-Authentication"
    for n in range(6000):
        signable = RequestSignable(method="POST", url="/orders", body=b"%d" % n)
        headers = signer.signed_headers(signable)
        raw = base64.b64decode(headers[header].split(":", 1)[1].rstrip(";"))
        if raw[0] == 0:
            return signable, headers, raw
    pytest.fail("no signature starting with a zero byte in 6000 tries")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_signature_without_its_leading_zero_byte_is_inauthentic(version: str) -> None:
    signable, headers, raw = _zero_led(version)
    authenticator = Authenticator(StaticKeySource({UUID: IDENT.public_key}))
    assert authenticator.is_authentic(signable, Signed.from_headers(headers))[0]
    header = "X-MWS-Authentication" if version == "v1" else "MCC-Authentication"
    prefix, _ = headers[header].split(":", 1)
    shortened = base64.b64encode(raw[1:]).decode() + (";" if version == "v2" else "")
    forged = dict(headers, **{header: f"{prefix}:{shortened}"})
    ok, status, _ = authenticator.is_authentic(signable, Signed.from_headers(forged))
    assert (ok, status) == (False, 401)


def test_the_low_level_checks_refuse_a_short_signature() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    message = b"a message"
    for n in range(6000):  # a V2 signature led by a zero byte
        data = message + b"%d" % n
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA512())
        if signature[0] == 0:
            break
    else:
        pytest.fail("no zero-led signature in 6000 tries")
    short = signature[1:]
    assert verify_v2(public, base64.b64encode(signature).decode(), data)
    assert not verify_v2(public, base64.b64encode(short).decode(), data)
    assert recover_v2(public, signature) is not None and recover_v2(public, short) is None
    assert recover_v1(public, short) is None
    assert not verify_v1(public, base64.b64encode(short).decode(), b"0" * 128)
