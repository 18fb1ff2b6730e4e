"""The request flow of every async server adapter, on an asyncio event loop.

Shared by the ASGI middleware, the FastAPI/Starlette dependency and the aiohttp
middleware, so they answer alike and at the same moments:

1. :func:`precheck`, before a byte of the body is read: every check that needs no
   body (:meth:`RequestGuard.precheck`: headers, method, time, token, app UUID
   shape, declared size), then the caller's public key. A cached key (or a cached
   "unknown app") answers at once, on the loop; a missing one is fetched with the
   async key source (:meth:`RequestGuard.alookup`: ``httpx.AsyncClient``, one fetch
   per app shared with threads), so an unknown app is refused before its body is
   read too, and a slow key service delays only the requests that need its answer.
2. The adapter reads the body, then :func:`check` verifies it: on the loop (a hash
   and one RSA verify, tens of microseconds: a thread hop costs more) when the key
   is at hand and the body is in memory; in a worker thread for a spooled or very
   large body, or a patched upstream seam (which may block). In remote mode the
   tickets are asked for on ``httpx.AsyncClient`` too (:func:`_check_remote`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Collection

from .authenticator import (
    _TICKET_VERDICTS,
    Authenticator,
    Prechecked,
    RemoteTicketChecker,
    TicketNeeded,
    is_uuid_shaped,
)
from .body import DEFAULT_SPOOL_THRESHOLD, Body
from .exceptions import InauthenticError, MAuthError
from .keys import load_public_key
from .permissions import NO_PERMISSIONS
from .server import Outcome, RequestGuard
from .signed import HeadersLike, Signed

#: In-memory bodies up to this size are hashed on the loop (about 2 ms for 1 MiB).
INLINE_BODY_LIMIT = DEFAULT_SPOOL_THRESHOLD


def parse_headers(headers: HeadersLike | Signed) -> Signed | HeadersLike:
    """The parsed MAuth headers, or ``headers`` as given when they cannot be parsed
    (the guard then words the 401)."""
    if isinstance(headers, Signed):
        return headers
    try:
        return Signed.from_headers(headers)
    except Exception:
        return headers


async def precheck(
    guard: RequestGuard,
    method: str,
    query: str,
    headers: HeadersLike | Signed,
    *,
    content_length: int | None = None,
) -> Outcome:
    """Everything before the body: ``CONTINUE`` (``go_on``) to read it and call
    :func:`check`; any other outcome is the answer (401, 413, 500), the body unread."""
    pre = guard.precheck(method, query, headers, content_length=content_length, lookup=False)
    if not pre.go_on:
        return pre
    ready = guard.cached(pre)  # a cached key, or a cached "unknown app": no I/O
    if ready is not None:
        return ready
    return await guard.alookup(pre)


async def check(
    guard: RequestGuard,
    method: str,
    path: str,
    query: str,
    headers: HeadersLike | Signed,
    body: Body,
    pre: Outcome,
    *,
    app_uuids: Collection[str] | None = None,
    required: frozenset[str] = NO_PERMISSIONS,
) -> Outcome:
    """:meth:`RequestGuard.check` of a request that passed :func:`precheck`: on the
    loop when nothing can block, else in a worker thread. ``required``: the route's
    own required permissions (:func:`~mauth_client.permissions.required_permissions`),
    beyond those of the guard's rules."""
    prechecked = pre.prechecked
    inline = not guard.permissions_may_block  # a permissions callable may block (issue 13)
    if (
        inline
        and prechecked is not None
        and isinstance(body, bytes)
        and len(body) <= INLINE_BODY_LIMIT
    ):
        authenticator = guard.authenticator
        checker = authenticator.ticket_checker
        # A shared replay cache (Redis) is a network round trip: never on the loop (issue 12).
        replay = authenticator.replay
        if (
            checker is None
            and (replay is None or not replay.blocking)
            and (
                # The common case, at no cost: one candidate, no fallback to prepare.
                (len(prechecked.candidates) == 1 and not prechecked.add_fallback())
                or await _fallback_keys(authenticator, prechecked)
            )
        ):
            return guard.check(
                method,
                path,
                query,
                headers,
                body,
                app_uuids=app_uuids,
                prechecked=prechecked,
                required=required,
            )
        if isinstance(checker, RemoteTicketChecker):
            return await _check_remote(
                guard, method, path, query, headers, body, prechecked, app_uuids, required
            )
    context = contextvars.copy_context()  # so a tracing span keeps the request's parent
    return await asyncio.get_running_loop().run_in_executor(
        None,
        context.run,
        lambda: guard.check(
            method,
            path,
            query,
            headers,
            body,
            app_uuids=app_uuids,
            prechecked=prechecked,
            required=required,
        ),
    )


async def _fallback_keys(authenticator: Authenticator, prechecked: Prechecked) -> bool:
    """Make sure a V1 fallback signed by another app cannot fetch a key on the loop.

    :func:`precheck` found the first signature's key; the V1 one a V2 failure falls
    back to (section 4.5) may name another app, whose key the check would fetch
    blocking the loop (any client could send such headers). Its key is looked up
    here, without blocking; False when it cannot be (the check then goes to a thread).
    The fallback is already among ``prechecked.candidates`` (``add_fallback``).
    """
    source = authenticator.key_source
    peek = getattr(source, "cached_key", None)
    fetch = getattr(source, "aget_public_key", None)
    for info in prechecked.candidates[1:]:
        app_uuid = info.app_uuid
        if app_uuid is None or app_uuid in prechecked.keys or not is_uuid_shaped(app_uuid):
            continue  # refused by its header checks without a key
        if peek is None or fetch is None:
            return False
        try:
            if peek(app_uuid) is not None:
                continue
            prechecked.keys[app_uuid] = load_public_key(await fetch(app_uuid))
        except InauthenticError:
            continue  # unknown: now cached as such, answered without I/O
        except MAuthError:
            return False
    return True


async def _check_remote(
    guard: RequestGuard,
    method: str,
    path: str,
    query: str,
    headers: HeadersLike | Signed,
    body: bytes,
    prechecked: Prechecked,
    app_uuids: Collection[str] | None,
    required: frozenset[str] = NO_PERMISSIONS,
) -> Outcome:
    """Remote mode on the loop: the guard's check runs as for every adapter; each
    ticket it needs is asked for on ``httpx.AsyncClient`` (it raises
    :class:`TicketNeeded`), then the check runs again with that verdict at hand.
    A request has at most two signatures, so at most two tickets and three passes."""
    verdicts: dict[tuple[int, str | None], MAuthError | None] = {}
    token = _TICKET_VERDICTS.set(verdicts)
    try:
        while True:
            try:
                return guard.check(
                    method,
                    path,
                    query,
                    headers,
                    body,
                    app_uuids=app_uuids,
                    prechecked=prechecked,
                    required=required,
                )
            except TicketNeeded as need:
                if need.key in verdicts:  # pragma: no cover - the checker answers from it
                    raise RuntimeError("a ticket verdict was asked for twice") from None
                try:
                    await need.checker.acheck(need.signable, need.info)
                except MAuthError as exc:  # refused (401) or unanswered (500): replayed
                    verdicts[need.key] = exc
                else:
                    verdicts[need.key] = None
    finally:
        _TICKET_VERDICTS.reset(token)


async def check_request(
    guard: RequestGuard,
    method: str,
    path: str,
    query: str,
    headers: HeadersLike | Signed,
    body: Body,
    *,
    app_uuids: Collection[str] | None = None,
    required: frozenset[str] = NO_PERMISSIONS,
) -> Outcome:
    """:func:`precheck` then :func:`check`, for a body already read."""
    signed = parse_headers(headers)
    pre = await precheck(guard, method, query, signed)
    if not pre.go_on:
        return pre
    return await check(
        guard, method, path, query, signed, body, pre, app_uuids=app_uuids, required=required
    )


def _answers_without_io(
    guard: RequestGuard, signed: Signed, method: str = "POST", query: str = ""
) -> bool:
    """True when :func:`precheck` would answer from the key cache alone (tests)."""
    pre = guard.precheck(method, query, signed, lookup=False)
    return not pre.go_on or guard.cached(pre) is not None
