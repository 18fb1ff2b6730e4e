"""Loading RSA keys from the forms they arrive in (``mauth-protocol.md`` section 3).

Private keys come as PKCS #1 or PKCS #8 PEM, public keys as PKCS #1 or
SubjectPublicKeyInfo PEM. Keys kept in environment variables often lost their
newlines (escaped as a literal ``\\n`` or replaced by spaces); the PEM is rebuilt
from its base64 body, so all those forms load. Errors never echo key material.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import threading
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

    Parsed keys are cached per PEM (a few entries): building many signers from one
    PEM (``MAuth(app_uuid, pem)`` per request, as upstream code does) parses and
    validates the key once. Raises :class:`~mauth_client.exceptions.KeyFormatError`
    naming the accepted formats; the message never contains the key.
    """
    if isinstance(data, rsa.RSAPrivateKey):
        return data  # already parsed and validated: not validated again
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, (str, bytes)):
        _as_bytes(data, "the private key", PRIVATE_KEY_FORMATS)  # raises naming the type
    return _load_private_text(data)


@lru_cache(maxsize=8)
def _load_private_text(data: str | bytes) -> rsa.RSAPrivateKey:
    what = "the private key"
    pem = _canonical_pem(
        _as_bytes(data, what, PRIVATE_KEY_FORMATS), _PRIVATE_LABELS, what, PRIVATE_KEY_FORMATS
    )
    return _load_private_pem(pem)


@lru_cache(maxsize=8)
def _load_private_pem(pem: bytes) -> rsa.RSAPrivateKey:
    """One parse (and one consistency check) per canonical PEM, whatever its newlines.

    OpenSSL's own check of a private key tests p and q for primality, about 40 ms per
    RSA-2048 key: 80x what upstream's constructor costs. This is the app's own key,
    from its own configuration, so the primality tests are skipped and the arithmetic
    that a corrupted key would break (n = pq, the CRT exponents and coefficient,
    ed = 1 mod lcm(p-1, q-1)) is checked instead, in well under a millisecond.
    """
    what = "the private key"
    try:
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
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
    if not _consistent(key.private_numbers()):
        raise KeyFormatError(
            f"{what} is corrupted: its numbers are not those of one RSA key; "
            f"expected {PRIVATE_KEY_FORMATS}"
        )
    return key


def _consistent(numbers: rsa.RSAPrivateNumbers) -> bool:
    """The RSA relations between a private key's numbers (a cheap stand-in for
    OpenSSL's full check, which also tests p and q for primality)."""
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    if p < 3 or q < 3 or p == q or p * q != n or not 1 < e < n:
        return False
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    return (
        (d * e) % lam == 1
        and numbers.dmp1 == d % (p - 1)
        and numbers.dmq1 == d % (q - 1)
        and (numbers.iqmp * q) % p == 1
    )


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
    with _served_lock:  # remember the text this key came as (KeyHolder returns it)
        if len(_served) >= _MAX_SERVED:
            del _served[next(iter(_served))]
        _served[id(key)] = (key, raw.decode("ascii", "replace"))
    return key


# id(key) -> (key, the PEM text it was parsed from); holding the key keeps its id valid.
_served: dict[int, tuple[rsa.RSAPublicKey, str]] = {}
_served_lock = threading.Lock()
_MAX_SERVED = 2048


def served_public_pem(key: rsa.RSAPublicKey) -> str | None:
    """The PEM text ``key`` was parsed from by :func:`load_public_key` (as a key service
    served it: PKCS #1 stays PKCS #1), or None if it was not parsed from text here."""
    entry = _served.get(id(key))
    return entry[1] if entry is not None and entry[0] is key else None


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
