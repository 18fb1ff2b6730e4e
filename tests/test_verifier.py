"""Signature decoding and checking never raise, whatever the signature looks like."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from mauth_client.keys import load_private_key
from mauth_client.verifier import decode_signature, verify_v1, verify_v2

from .conftest import VECTORS

KEY = load_private_key((VECTORS / "signing-key.pem").read_text())
PUBLIC = KEY.public_key()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("QUJD", b"ABC"),
        ("QUI=", b"AB"),
        ("QQ==", b"A"),
        ("QUJD\n", None),  # no whitespace
        ("QU JD", None),
        ("QUJ", None),  # bad padding
        ("QU==JD", None),  # data after padding
        ("QUJD===", None),  # more than two "="
        ("QUJD====", None),
        ("QUJ-", None),  # URL-safe alphabet is not standard base64
        ("!!!!", None),
        ("", None),
        (None, None),
    ],
)
def test_decode_signature(text: str | None, expected: bytes | None) -> None:
    assert decode_signature(text) == expected


def test_valid_signatures_made_with_raw_cryptography() -> None:
    digest = hashlib.sha512(b"string to sign").hexdigest().encode()
    v1 = base64.b64encode(KEY.sign(digest, padding.PKCS1v15(), utils.NoDigestInfo())).decode()
    v2 = base64.b64encode(KEY.sign(b"string to sign", padding.PKCS1v15(), hashes.SHA512())).decode()
    assert verify_v1(PUBLIC, v1, digest)
    assert verify_v2(PUBLIC, v2, b"string to sign")
    assert not verify_v1(PUBLIC, v1, digest[:-1] + b"0")
    assert not verify_v2(PUBLIC, v2, b"string to sign!")
    assert not verify_v1(PUBLIC, v2, digest)  # V2's signature is not V1's


@pytest.mark.parametrize("length", [0, 1, 255, 257, 512])
def test_wrong_length_signatures_are_false(length: int) -> None:
    signature = base64.b64encode(b"\x01" * length).decode()
    assert verify_v1(PUBLIC, signature, b"x") is False
    assert verify_v2(PUBLIC, signature, b"x") is False
