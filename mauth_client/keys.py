"""Loading RSA keys from the forms they arrive in (``mauth-protocol.md`` section 3).

Private keys come as PKCS #1 or PKCS #8 PEM, public keys as PKCS #1 or
SubjectPublicKeyInfo PEM. Keys kept in environment variables often lost their
newlines (escaped as a literal ``\\n`` or replaced by spaces); the PEM is rebuilt
from its base64 body, so all those forms load. Errors never echo key material.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .exceptions import KeyFormatError

PrivateKeyData: TypeAlias = str | bytes | rsa.RSAPrivateKey
PublicKeyData: TypeAlias = str | bytes | rsa.RSAPublicKey

PRIVATE_KEY_FORMATS = (
    "a PEM-encoded RSA private key: PKCS #1 ('-----BEGIN RSA PRIVATE KEY-----') or "
    "PKCS #8 ('-----BEGIN PRIVATE KEY-----'), with real newlines, newlines escaped "
    "as '\\n', or newlines replaced by spaces"
)
PUBLIC_KEY_FORMATS = (
    "a PEM-encoded RSA public key: SubjectPublicKeyInfo ('-----BEGIN PUBLIC KEY-----') "
    "or PKCS #1 ('-----BEGIN RSA PUBLIC KEY-----'), with real newlines, newlines "
    "escaped as '\\n', or newlines replaced by spaces"
)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
# Whitespace and the two characters of an escaped newline ("\" "n") inside the body.
_PEM_BODY_NOISE = re.compile(rb"\\n|\\r|\s")
_PRIVATE_LABELS = (b"RSA PRIVATE KEY", b"PRIVATE KEY")
_PUBLIC_LABELS = (b"PUBLIC KEY", b"RSA PUBLIC KEY")


def _as_bytes(data: str | bytes, what: str, formats: str) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("ascii")
        except UnicodeEncodeError:
            raise KeyFormatError(
                f"{what} contains non-ASCII characters; expected {formats}"
            ) from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise KeyFormatError(
        f"{what} must be str or bytes, not {type(data).__name__}; expected {formats}"
    )


def _canonical_pem(data: bytes, labels: tuple[bytes, ...], what: str, formats: str) -> bytes:
    """Rebuild a well-formed PEM block from ``data``, whatever happened to its newlines."""
    match = _PEM_BLOCK.search(data)
    if match is None or match.group(1) not in labels:
        raise KeyFormatError(f"{what} is not {formats}")
    label = match.group(1)
    body = _PEM_BODY_NOISE.sub(b"", match.group(2))
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(
            f"{what} has a PEM block whose body is not valid base64; expected {formats}"
        ) from None
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join(
        [b"-----BEGIN " + label + b"-----", *lines, b"-----END " + label + b"-----", b""]
    )


def looks_like_pem(data: str | bytes) -> bool:
    """True when ``data`` carries a PEM marker (else it may be a KMS-encrypted key)."""
    marker = "-----BEGIN" if isinstance(data, str) else b"-----BEGIN"
    return marker in data  # type: ignore[operator]


def load_private_key(data: PrivateKeyData) -> rsa.RSAPrivateKey:
    """Parse an RSA private key given as PEM text or bytes (or pass a key object through).

    Raises :class:`~mauth_client.exceptions.KeyFormatError` naming the accepted
    formats; the message never contains the key.
    """
    if isinstance(data, rsa.RSAPrivateKey):
        return data
    what = "the private key"
    pem = _canonical_pem(
        _as_bytes(data, what, PRIVATE_KEY_FORMATS), _PRIVATE_LABELS, what, PRIVATE_KEY_FORMATS
    )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # cryptography's way of saying "this key needs a password"
        raise KeyFormatError(
            f"{what} is encrypted with a passphrase, which is not supported; "
            f"expected {PRIVATE_KEY_FORMATS}"
        ) from None
    except Exception:  # ValueError, or cryptography's own errors on malformed DER
        raise KeyFormatError(
            f"{what} could not be parsed; expected {PRIVATE_KEY_FORMATS}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError(
            f"{what} is a {type(key).__name__.lstrip('_')}, not RSA; expected {PRIVATE_KEY_FORMATS}"
        )
    return key


def load_public_key(data: PublicKeyData) -> rsa.RSAPublicKey:
    """Parse an RSA public key given as PEM text or bytes; parsed keys are cached.

    The cache is keyed by the PEM bytes and bounded (LRU), so verifying many
    messages from the same app parses its key once.
    """
    if isinstance(data, rsa.RSAPublicKey):
        return data
    what = "the public key"
    return _load_public_pem(_as_bytes(data, what, PUBLIC_KEY_FORMATS))


@lru_cache(maxsize=1024)
def _load_public_pem(raw: bytes) -> rsa.RSAPublicKey:
    what = "the public key"
    pem = _canonical_pem(raw, _PUBLIC_LABELS, what, PUBLIC_KEY_FORMATS)
    try:
        key = serialization.load_pem_public_key(pem)
    except Exception:  # ValueError, or cryptography's own errors on malformed DER
        raise KeyFormatError(f"{what} could not be parsed; expected {PUBLIC_KEY_FORMATS}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError(f"{what} is not an RSA key; expected {PUBLIC_KEY_FORMATS}")
    return key


def public_key_pem(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of ``key`` (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def bare_der_private_key_pem(data: str) -> str | None:
    """PEM for an RSA private key given as bare base64 DER (a PEM body without its
    markers), or None when ``data`` is not one (it may then be a KMS ciphertext).

    Tried before KMS so that a key pasted without its markers is never sent to AWS.
    """
    try:
        blob = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        key = serialization.load_der_private_key(blob, password=None)
    except Exception:  # not DER, or encrypted: not a bare key
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        return None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
