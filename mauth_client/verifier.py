"""Checking V1 and V2 signatures against a public key (``mauth-protocol.md`` section 3).

Both functions answer True or False and never raise on a malformed signature.
A signature must be exactly as long as the key's modulus: OpenSSL's public decrypt
also takes a shorter input (a signature whose first byte is 0, sent without it),
which would give one signature a second spelling.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_PKCS1V15 = padding.PKCS1v15()
_SHA512 = hashes.SHA512()


if sys.version_info >= (3, 11):

    def decode_signature(signature: str | None) -> bytes | None:
        """Standard base64 to bytes; None for anything that is not strict base64."""
        if not signature or signature.endswith("==="):  # at most two "=" of padding
            return None
        try:
            return binascii.a2b_base64(signature, strict_mode=True)  # alphabet and padding, in C
        except (binascii.Error, ValueError):
            return None

else:

    def decode_signature(signature: str | None) -> bytes | None:
        """Standard base64 to bytes; None for anything that is not strict base64."""
        if not signature or signature.endswith("==="):
            return None
        try:
            return base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return None


def _full_length(public_key: rsa.RSAPublicKey, raw: bytes) -> bool:
    return len(raw) == (public_key.key_size + 7) // 8


def verify_v1(public_key: rsa.RSAPublicKey, signature: str | None, hexdigest: bytes) -> bool:
    """V1: apply the public key, strip type-1 padding, compare with the expected hex
    digest in constant time."""
    raw = decode_signature(signature)
    if raw is None or not _full_length(public_key, raw):
        return False
    try:  # a signature of the wrong length raises, as a wrong one does
        recovered = public_key.recover_data_from_signature(raw, _PKCS1V15, None)
    except (InvalidSignature, ValueError):
        return False
    return hmac.compare_digest(recovered, hexdigest)


def verify_v2(public_key: rsa.RSAPublicKey, signature: str | None, string_to_sign: bytes) -> bool:
    """V2: a standard RSASSA-PKCS1-v1_5 SHA-512 verification."""
    raw = decode_signature(signature)
    if raw is None or not _full_length(public_key, raw):
        return False
    try:
        public_key.verify(raw, string_to_sign, _PKCS1V15, _SHA512)
    except (InvalidSignature, ValueError):
        return False
    return True


def recover_v2(public_key: rsa.RSAPublicKey, raw: bytes) -> bytes | None:
    """V2: the SHA-512 digest a signature carries (padding and DigestInfo checked by
    OpenSSL), or None. One RSA operation, after which any number of candidate strings
    can be compared with :func:`hmac.compare_digest` on their SHA-512 digests."""
    if not _full_length(public_key, raw):
        return None
    try:
        return public_key.recover_data_from_signature(raw, _PKCS1V15, _SHA512)
    except (InvalidSignature, ValueError):
        return None


def recover_v1(public_key: rsa.RSAPublicKey, raw: bytes) -> bytes | None:
    """V1: the hex digest a signature carries (type-1 padding stripped), or None."""
    if not _full_length(public_key, raw):
        return None
    try:
        return public_key.recover_data_from_signature(raw, _PKCS1V15, None)
    except (InvalidSignature, ValueError):
        return None
