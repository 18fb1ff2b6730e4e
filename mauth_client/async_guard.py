"""Run :meth:`RequestGuard.check` from an event loop without blocking it.

Shared by the async server adapters (the FastAPI/Starlette dependency, the aiohttp
middleware). A check whose public key is already cached, or cached as unknown, is
a hash and one RSA verify, tens of microseconds: it runs on the loop, because a
hop to a worker thread costs more than the check itself. A check that may wait on
the network (a key fetch, a remote-mode ticket, a patched ``KeyHolder``, a key
source this module does not know) runs in a worker thread, so a slow MAuth
service delays only the requests that need it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import anyio

from .authenticator import Authenticator
from .body import Body
from .key_holder import KeyHolder, KeyHolderSource
from .key_source import LocalKeySource, StaticKeySource
from .server import Outcome, RequestGuard
from .signed import HeadersLike, Signed

_ORIGINAL_GET_PUBLIC_KEY = KeyHolder.__dict__["get_public_key"]


async def check_request(
    guard: RequestGuard,
    method: str,
    path: str,
    query: str,
    headers: HeadersLike | Signed,
    body: Body,
    *,
    app_uuids: Collection[str] | None = None,
) -> Outcome:
    """:meth:`RequestGuard.check`, on the loop when nothing can block, else in a thread."""
    try:
        signed = headers if isinstance(headers, Signed) else Signed.from_headers(headers)
    except Exception:  # unparseable headers: let the guard word the 401, off the loop
        signed = None
    if signed is not None and _answers_without_io(guard, signed):
        return guard.check(method, path, query, signed, body, app_uuids=app_uuids)
    return await anyio.to_thread.run_sync(
        lambda: guard.check(method, path, query, signed or headers, body, app_uuids=app_uuids)
    )


def _answers_without_io(guard: RequestGuard, signed: Signed) -> bool:
    """True when every key this request may need is already known to the guard's key
    source (an unsigned request needs none). Unknown shapes say False: a thread is
    always safe, only slower."""
    authenticator: Authenticator | None = guard._authenticator
    if authenticator is None or authenticator.ticket_checker is not None:
        return False  # first request builds the authenticator; remote mode is a network call
    if authenticator.replay is not None and authenticator.replay.blocking:
        return False  # a shared replay cache (Redis) is a network round trip (issue 12)
    app_uuids = {info.app_uuid for info in (signed.v2, signed.v1) if info is not None}
    app_uuids.discard(None)
    if not app_uuids:
        return True
    return all(_is_cached(authenticator.key_source, uuid) for uuid in app_uuids if uuid)


def _is_cached(source: Any, app_uuid: str) -> bool:
    if isinstance(source, KeyHolderSource):
        if KeyHolder.__dict__.get("get_public_key") is not _ORIGINAL_GET_PUBLIC_KEY:
            return False  # a patched KeyHolder may do anything
        source = source.inner
        if source is None:
            return True  # answers at once: "MAuth is not configured"
    if isinstance(source, StaticKeySource):
        return True
    probe = getattr(source, "is_cached", None)
    if callable(probe):
        return bool(probe(app_uuid))
    if isinstance(source, LocalKeySource):
        try:  # its cache, read as its own hot path reads it (a dict get, no lock)
            entry = source._keys.get(app_uuid)
            if entry is not None and entry.expires_at > source._clock():
                return True
            return app_uuid in source._unknown
        except (AttributeError, TypeError):  # a cache of another shape: ask a thread
            return False
    return False
