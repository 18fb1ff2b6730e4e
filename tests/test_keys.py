"""Key loading: every accepted form, and clear errors that never echo key material."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mauth_client.exceptions import KeyFormatError
from mauth_client.keys import load_private_key, load_public_key, looks_like_pem, public_key_pem

from .conftest import VECTORS

PKCS1 = (VECTORS / "signing-key.pem").read_text()
PKCS8 = (VECTORS / "signing-key.pkcs8.pem").read_text()
SPKI = (VECTORS / "signing-key.pub.pem").read_text()
RSAPUB = (VECTORS / "signing-key.rsapub.pem").read_text()


def _numbers(key: rsa.RSAPrivateKey) -> int:
    return key.private_numbers().d


EXPECTED_D = serialization.load_pem_private_key(PKCS1.encode(), None).private_numbers().d  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "variant",
    [
        lambda pem: pem,
        lambda pem: pem.encode(),
        lambda pem: pem.replace("\n", "\\n"),  # newlines escaped in an env var
        lambda pem: pem.replace("\n", " "),  # newlines replaced by spaces
        lambda pem: pem.replace("\n", "\r\n"),
        lambda pem: "  \n" + pem.strip() + "\n\n  ",
        lambda pem: pem.replace("\n", ""),  # no separators at all
    ],
    ids=["str", "bytes", "escaped-newlines", "spaces", "crlf", "padded", "squashed"],
)
@pytest.mark.parametrize("pem", [PKCS1, PKCS8], ids=["pkcs1", "pkcs8"])
def test_private_key_forms(pem: str, variant: object) -> None:
    key = load_private_key(variant(pem))  # type: ignore[operator]
    assert _numbers(key) == EXPECTED_D


@pytest.mark.parametrize(
    "variant",
    [
        lambda p: p,
        lambda p: p.encode(),
        lambda p: p.replace("\n", "\\n"),
        lambda p: p.replace("\n", " "),
    ],
    ids=["str", "bytes", "escaped", "spaces"],
)
@pytest.mark.parametrize("pem", [SPKI, RSAPUB], ids=["spki", "pkcs1"])
def test_public_key_forms(pem: str, variant: object) -> None:
    key = load_public_key(variant(pem))  # type: ignore[operator]
    expected = load_private_key(PKCS1).public_key().public_numbers()
    assert key.public_numbers() == expected


def test_key_objects_pass_through() -> None:
    private = load_private_key(PKCS1)
    assert load_private_key(private) is private
    public = private.public_key()
    assert load_public_key(public) is public


def test_parsed_public_keys_are_cached() -> None:
    assert load_public_key(SPKI) is load_public_key(SPKI.encode())


def test_public_key_pem_round_trips() -> None:
    assert public_key_pem(load_private_key(PKCS1)).strip() == SPKI.strip()


SECRET_BODY = PKCS1.splitlines()[5]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "PKCS #1"),
        ("not a key", "BEGIN PRIVATE KEY"),
        (SPKI, "private key is not"),  # a public key where a private one belongs
        (PKCS1.replace(SECRET_BODY, SECRET_BODY[:-4] + "!!!!"), "not valid base64"),
        (PKCS1.replace(SECRET_BODY, SECRET_BODY[8:]), "could not be parsed"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "could not be parsed",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----caf\u00e9", "non-ASCII"),
        (12345, "must be str or bytes"),
    ],
    ids=["empty", "garbage", "public", "bad-base64", "truncated", "tiny", "non-ascii", "int"],
)
def test_bad_private_keys(data: object, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message) as info:
        load_private_key(data)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "PKCS #1" in text and "PKCS #8" in text  # names the accepted formats
    assert SECRET_BODY[10:40] not in text  # never echoes key material
    assert info.value.__cause__ is None  # nor through a chained exception


def test_encrypted_private_key_is_refused_clearly() -> None:
    key = load_private_key(PKCS1)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeyFormatError):
        load_private_key(encrypted)


def test_non_rsa_keys_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="not RSA"):
        load_private_key(pem)
    pub = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFormatError, match="not an RSA key"):
        load_public_key(pub)


@pytest.mark.parametrize("data", ["", "garbage", PKCS1, b"\xff\xfe"])
def test_bad_public_keys(data: str | bytes) -> None:
    with pytest.raises(KeyFormatError, match="SubjectPublicKeyInfo"):
        load_public_key(data)


def test_looks_like_pem() -> None:
    assert looks_like_pem(PKCS1) and looks_like_pem(PKCS1.encode())
    assert not looks_like_pem("QUJDRA==")


# --- private keys: parsed once, checked cheaply (issue 9) -------------------------------


@pytest.mark.parametrize("field", ["d", "dmp1", "dmq1", "iqmp"])
def test_a_private_key_with_inconsistent_numbers_is_refused(field: str) -> None:
    """The primality tests are skipped for speed; the RSA relations are still checked,
    so a corrupted key (a wrong CRT value would make signatures leak the key) is refused."""
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    values = {
        "p": good.p,
        "q": good.q,
        "d": good.d,
        "dmp1": good.dmp1,
        "dmq1": good.dmq1,
        "iqmp": good.iqmp,
    }
    values[field] -= 2  # keeps the parity and the bounds cryptography checks itself
    corrupted = rsa.RSAPrivateNumbers(public_numbers=good.public_numbers, **values).private_key(
        unsafe_skip_rsa_key_validation=True
    )
    pem = corrupted.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFormatError, match="corrupted") as caught:
        load_private_key(pem)
    body_line = pem.decode().splitlines()[1]
    assert body_line not in str(caught.value)  # no key material in the message


def test_the_same_private_key_pem_is_parsed_once() -> None:
    pem = (VECTORS / "signing-key.pem").read_text()
    first = load_private_key(pem)
    assert load_private_key(pem) is first
    assert load_private_key(pem.encode()) is load_private_key(pem.encode())
    assert load_private_key(pem.replace("\n", "\\n")) is first  # same key, escaped newlines
