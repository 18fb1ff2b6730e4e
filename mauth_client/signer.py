"""Signing messages: V1 and V2 signatures and the headers that carry them.

Implements ``mauth-protocol.md`` sections 1 and 3. The private key is parsed once,
when the signer is built; each message then costs its RSA operations plus a few
microseconds of string building.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time as _time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from .consts import (
    DEFAULT_SIGN_VERSIONS,
    MCC_AUTH,
    MCC_TIME,
    MWS_TOKEN,
    MWSV2_TOKEN,
    SIGN_VERSIONS,
    X_MWS_AUTH,
    X_MWS_TIME,
)
from .exceptions import ConfigurationError, UnableToSignError
from .keys import PrivateKeyData, load_private_key
from .signable import RequestSignable, Signable, _time_text

logger = logging.getLogger("mauth_client")

_PKCS1V15 = padding.PKCS1v15()
_SHA512 = hashes.SHA512()
_NO_DIGEST_INFO = utils.NoDigestInfo()


def parse_sign_versions(sign_versions: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"v1,v2"`` (or a list, any case, spaces allowed) to ``("v1", "v2")``.

    Unknown versions are skipped with a WARNING (upstream ignored them silently);
    :class:`ConfigurationError` only when no known version is left.
    """
    if sign_versions is None:
        sign_versions = DEFAULT_SIGN_VERSIONS
    if isinstance(sign_versions, str):
        cached = _PARSED_VERSIONS.get(sign_versions)
        if cached is not None:
            return cached
        items: list[object] = list(sign_versions.split(","))
    else:
        try:
            items = list(sign_versions)
        except TypeError:
            raise ConfigurationError(
                f"sign versions must be text such as 'v1,v2', not {type(sign_versions).__name__}"
            ) from None
    versions: list[str] = []
    unknown: list[str] = []
    for item in items:
        version = str(item).strip().lower()
        if version in SIGN_VERSIONS:
            if version not in versions:
                versions.append(version)
        elif version:
            unknown.append(str(item).strip())
    if not versions:
        raise ConfigurationError(
            "no known MAuth sign version given"
            + (f" ({', '.join(map(repr, unknown))} unknown)" if unknown else "")
            + "; use 'v1', 'v2' or 'v1,v2' (MAUTH_SIGN_VERSIONS)"
        )
    if unknown:
        logger.warning(
            "MAuth: ignoring unknown sign version(s) %s; signing with %s",
            ", ".join(map(repr, unknown)),
            ",".join(sorted(versions)),
        )
    result = tuple(sorted(versions))
    if isinstance(sign_versions, str) and not unknown and len(_PARSED_VERSIONS) < 64:
        _PARSED_VERSIONS[sign_versions] = result
    return result


_PARSED_VERSIONS: dict[str, tuple[str, ...]] = {}


def check_app_uuid(app_uuid: object) -> str:
    """An app UUID must be non-empty text without ``:``, whitespace or control characters,
    since it is written into the authentication header (section 1)."""
    if not isinstance(app_uuid, str) or not app_uuid:
        raise ConfigurationError("the app UUID is missing; set APP_UUID or MAUTH_APP_UUID")
    if ":" in app_uuid or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in app_uuid):
        raise ConfigurationError(
            "the app UUID must not contain ':', whitespace or control characters"
        )
    return app_uuid


def sign_v1_digest(key: rsa.RSAPrivateKey, hexdigest: bytes) -> str:
    """V1: PKCS #1 v1.5 type-1 padding of the 128-byte hex digest, without DigestInfo."""
    return base64.b64encode(key.sign(hexdigest, _PKCS1V15, _NO_DIGEST_INFO)).decode("ascii")


def sign_v2_string(key: rsa.RSAPrivateKey, string_to_sign: bytes) -> str:
    """V2: RSASSA-PKCS1-v1_5 with SHA-512 over the string to sign."""
    return base64.b64encode(key.sign(string_to_sign, _PKCS1V15, _SHA512)).decode("ascii")


class Signer:
    """Signs requests and responses as one app.

    ``sign_versions`` is ``"v1"``, ``"v2"`` or ``"v1,v2"`` (or a list of those).
    """

    def __init__(
        self,
        app_uuid: str,
        private_key_data: PrivateKeyData,
        sign_versions: str | Iterable[str] | None = DEFAULT_SIGN_VERSIONS,
    ) -> None:
        self.app_uuid = check_app_uuid(app_uuid)
        self.sign_versions = parse_sign_versions(sign_versions)
        self._key = load_private_key(private_key_data)

    def __repr__(self) -> str:
        return f"Signer(app_uuid={self.app_uuid!r}, sign_versions={','.join(self.sign_versions)!r})"

    def _time(self, attributes: Mapping[str, Any] | None) -> str:
        value = attributes.get("time") if attributes else None
        try:
            return _time_text(int(_time.time()) if value is None else value)
        except UnableToSignError:
            raise UnableToSignError(
                "the signing time must be an integer number of epoch seconds"
            ) from None

    def signed_headers(
        self, signable: Signable, attributes: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The MAuth headers for ``signable``, for every configured version.

        ``attributes`` may carry ``time`` (epoch seconds) to sign at a given time.
        """
        when = self._prepare(signable, attributes)
        headers: dict[str, str] = {}
        if "v1" in self.sign_versions:
            headers.update(self._headers_v1(signable, when))
        if "v2" in self.sign_versions:
            headers.update(self._headers_v2(signable, when))
        return headers

    def signed_headers_v1(
        self, signable: Signable, attributes: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """``X-MWS-Authentication`` and ``X-MWS-Time`` for ``signable``."""
        return self._headers_v1(signable, self._prepare(signable, attributes))

    def signed_headers_v2(
        self, signable: Signable, attributes: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """``MCC-Authentication`` and ``MCC-Time`` for ``signable`` (note the trailing ``;``)."""
        return self._headers_v2(signable, self._prepare(signable, attributes))

    def _prepare(self, signable: Signable, attributes: Mapping[str, Any] | None) -> str:
        if not isinstance(signable, Signable):
            raise UnableToSignError(
                f"expected a RequestSignable or ResponseSignable, not {type(signable).__name__}"
            )
        if isinstance(signable, RequestSignable):
            signable.check()
        return self._time(attributes)

    def _headers_v1(self, signable: Signable, when: str) -> dict[str, str]:
        digest = signable.v1_hexdigest(self.app_uuid, when)
        assert digest is not None  # the message's own prefix is always hashed
        signature = sign_v1_digest(self._key, digest)
        return {X_MWS_AUTH: f"{MWS_TOKEN} {self.app_uuid}:{signature}", X_MWS_TIME: when}

    def _headers_v2(self, signable: Signable, when: str) -> dict[str, str]:
        signature = sign_v2_string(self._key, signable.v2_string(self.app_uuid, when))
        return {MCC_AUTH: f"{MWSV2_TOKEN} {self.app_uuid}:{signature};", MCC_TIME: when}

    def signature_v1(self, string_to_sign: str | bytes) -> str:
        """The base64 V1 signature of a whole V1 string to sign."""
        data = string_to_sign.encode("utf-8") if isinstance(string_to_sign, str) else string_to_sign
        return sign_v1_digest(self._key, hashlib.sha512(data).hexdigest().encode("ascii"))

    def signature_v2(self, string_to_sign: str | bytes) -> str:
        """The base64 V2 signature of a V2 string to sign."""
        data = string_to_sign.encode("utf-8") if isinstance(string_to_sign, str) else string_to_sign
        return sign_v2_string(self._key, data)
