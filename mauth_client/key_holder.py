"""``KeyHolder.get_public_key(app_uuid)``: upstream's seam for supplying public keys.

Existing test suites patch ``KeyHolder.get_public_key`` to hand in a key. Every
authenticator this library builds from a config looks keys up through
:class:`KeyHolderSource`, which calls the patched method when there is one and
goes straight to its own cached :class:`~mauth_client.key_source.LocalKeySource`
when there is not.
"""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric import rsa

from .exceptions import ConfigurationError, UnableToAuthenticateError
from .key_source import LocalKeySource
from .keys import PublicKeyData, load_public_key, public_key_pem, served_public_pem


def _source() -> LocalKeySource:
    """The key cache of the process-wide default authenticator: one cache (and one
    fetch per app) whether keys are asked for here or by ``LocalAuthenticator``; rebuilt
    when the environment or ``Config``'s class attributes change."""
    from .authenticator import default_authenticator  # here: authenticator imports us

    try:
        source = default_authenticator("local").key_source
    except ConfigurationError as exc:
        raise UnableToAuthenticateError(f"public keys cannot be fetched: {exc}") from None
    inner = source.inner if isinstance(source, KeyHolderSource) else None
    if inner is None:
        raise UnableToAuthenticateError(
            "public keys cannot be fetched: MAuth is not configured: set MAUTH_URL"
        )
    return inner


class KeyHolder:
    """Public keys of other apps, from the MAuth service (upstream API)."""

    @classmethod
    def get_public_key(cls, app_uuid: str) -> str:
        """The PEM public key of ``app_uuid`` as the MAuth service served it, fetched once
        and cached per its max-age (the parsed key is cached alongside for verifying)."""
        key = _source().get_public_key(app_uuid)
        return served_public_pem(key) or public_key_pem(key)


_ORIGINAL = KeyHolder.__dict__["get_public_key"]


class KeyHolderSource:
    """A key source that honours a patched ``KeyHolder.get_public_key``."""

    def __init__(self, inner: LocalKeySource | None) -> None:
        self.inner = inner

    def get_public_key(self, app_uuid: str) -> PublicKeyData | rsa.RSAPublicKey:
        patched = KeyHolder.__dict__.get("get_public_key") is not _ORIGINAL
        if patched:
            return load_public_key(KeyHolder.get_public_key(app_uuid))
        if self.inner is None:
            raise UnableToAuthenticateError(
                "public keys cannot be fetched: MAuth is not configured: set MAUTH_URL"
            )
        return self.inner.get_public_key(app_uuid)

    def refresh_public_key(
        self, app_uuid: str, failed_key: object = None
    ) -> rsa.RSAPublicKey | None:
        """A newer key after a failed signature (None when ``KeyHolder`` is patched:
        the patch is the only source then)."""
        if self.inner is None or KeyHolder.__dict__.get("get_public_key") is not _ORIGINAL:
            return None
        return self.inner.refresh_public_key(app_uuid, failed_key)

    def invalidate(self, app_uuid: str | None = None) -> None:
        """Forget cached keys (of ``app_uuid``, or all)."""
        if self.inner is not None:
            self.inner.invalidate(app_uuid)

    async def aget_public_key(self, app_uuid: str) -> PublicKeyData | rsa.RSAPublicKey:
        """:meth:`get_public_key` for an event loop: the inner source's async fetch; a
        patched ``KeyHolder`` (which may block) runs in a worker thread."""
        if KeyHolder.__dict__.get("get_public_key") is not _ORIGINAL or self.inner is None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.get_public_key, app_uuid)
        return await self.inner.aget_public_key(app_uuid)

    def cached_key(self, app_uuid: str) -> rsa.RSAPublicKey | None:
        """Without blocking: the inner source's cached key (see
        :meth:`LocalKeySource.cached_key`); None when ``KeyHolder`` is patched (its
        answer is not known to be free) or nothing is configured."""
        if KeyHolder.__dict__.get("get_public_key") is not _ORIGINAL or self.inner is None:
            return None
        return self.inner.cached_key(app_uuid)
