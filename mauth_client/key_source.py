"""Where public keys come from, and the MAuth service client (``mauth-protocol.md`` section 5).

- :class:`StaticKeySource`: a fixed mapping of app UUID to public key.
- :class:`LocalKeySource`: keys fetched from the MAuth service, cached for their
  response's ``max-age``; one fetch per app UUID however many threads ask at once;
  404s cached negatively for a short time; both caches bounded; keys refetched
  after a failed signature (rotation), used stale while the service fails, and a
  circuit breaker so that a failing service is not asked again and again.
- :class:`MAuthServiceClient` (from :mod:`~mauth_client.key_service_requests`): the
  signed HTTP calls to the service under the rules of
  :mod:`~mauth_client.key_service` (deadline, retries, same-origin redirects, size).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, NamedTuple, Protocol

from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric import rsa

from . import forksafe, observability
from .config import Config
from .exceptions import InauthenticError, UnableToAuthenticateError
from .key_service import max_age  # re-exported: part of this module's public names
from .key_service_requests import MAuthServiceClient
from .keys import PublicKeyData, load_public_key

if TYPE_CHECKING:  # httpx is an extra: imported when an async fetch first happens
    from .key_service_httpx import AsyncMAuthServiceClient

logger = logging.getLogger("mauth_client")

Clock = Callable[[], float]
__all__ = ["KeySource", "LocalKeySource", "MAuthServiceClient", "StaticKeySource", "max_age"]


class KeySource(Protocol):
    """Anything that maps an app UUID to its public key.

    Raise :class:`InauthenticError` for an unknown app and
    :class:`UnableToAuthenticateError` when the answer cannot be had.
    """

    def get_public_key(self, app_uuid: str) -> PublicKeyData: ...


class StaticKeySource:
    """Public keys from a mapping (PEM text, bytes or key objects)."""

    def __init__(self, keys: Mapping[str, PublicKeyData]) -> None:
        self._keys = dict(keys)

    def get_public_key(self, app_uuid: str) -> rsa.RSAPublicKey:
        try:
            return load_public_key(self._keys[app_uuid])
        except KeyError:
            raise InauthenticError(f"no public key is known for app {app_uuid!r}") from None

    def cached_key(self, app_uuid: str) -> rsa.RSAPublicKey:
        """Never blocks: the same as :meth:`get_public_key`."""
        return self.get_public_key(app_uuid)


class _Entry(NamedTuple):
    key: rsa.RSAPublicKey
    expires_at: float
    fetched_at: float


class LocalKeySource:
    """Public keys from the MAuth service's ``security_tokens`` endpoint, cached.

    Thread-safe. ``clock`` is injectable so tests can move time. App UUIDs are
    compared and cached in lower case (UUIDs are case-insensitive), so case variants
    share one lookup. Beyond the plain cache (issue 12, issue 10 item 8):

    - **Key rotation**: :meth:`refresh_public_key` fetches a key again after a
      signature failed with it, at most once per app per ``min_key_refetch_interval``.
    - **Stale keys**: while the service fails (5xx, timeout, refused connection) an
      expired key is still used, with a WARNING, up to ``max_stale`` after its expiry.
    - **Circuit breaker**: after a lookup failed because of the service, lookups fail
      fast for ``lookup_failure_cooldown`` seconds (logged once per outage).
    """

    def __init__(
        self,
        config: Config,
        *,
        client: MAuthServiceClient | None = None,
        clock: Clock = time.time,
        async_client: AsyncMAuthServiceClient | None = None,
    ) -> None:
        self.config = config
        self.client = client or MAuthServiceClient(config)
        self._clock = clock
        self._lock = threading.Lock()
        # Hot path: a plain dict read (atomic under the GIL) and one clock call; writes
        # take the lock. Bounded by key_cache_size (expired entries go first, then the oldest).
        self._keys: dict[str, _Entry] = {}
        self._unknown: TTLCache[str, bool] = TTLCache(
            maxsize=config.key_cache_size, ttl=config.negative_cache_ttl, timer=clock
        )
        self._in_flight: dict[str, Future[_Entry | None]] = {}
        self._refetched: TTLCache[str, float] = TTLCache(
            maxsize=config.key_cache_size,
            ttl=max(config.min_key_refetch_interval, 0.001),
            timer=clock,
        )
        self._stale_logged: TTLCache[str, bool] = TTLCache(
            maxsize=config.key_cache_size, ttl=60, timer=clock
        )
        self._open_until = float("-inf")  # circuit breaker: no lookups before this time
        self._outage = False
        self.fetch_count = 0
        # Async fetches (aget_public_key): the httpx client, built on first use, and
        # the fetch tasks in progress (held here so they are not collected mid-fetch).
        self._async_client = async_client
        self._fetch_tasks: set[asyncio.Task[None]] = set()
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # Keep the cached keys; a lock or a fetch in flight belongs to a parent's thread
        # (or event loop) that does not exist here (it would never be released or finish).
        self._lock = threading.Lock()
        self._in_flight = {}
        self._fetch_tasks = set()

    def get_public_key(self, app_uuid: str) -> rsa.RSAPublicKey:
        entry = self._keys.get(app_uuid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        uid = app_uuid.lower()  # UUIDs are case-insensitive: one cache entry, one lookup
        entry = self._keys.get(uid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        try:
            return self._blocking_lookup(uid)
        except UnableToAuthenticateError:
            stale = self._stale_key(uid)
            if stale is None:
                raise
            return stale

    def _blocking_lookup(self, app_uuid: str) -> rsa.RSAPublicKey:
        flight, leader = self._join(app_uuid, fast_fail=True)
        return _key_of(self._run_flight(app_uuid, flight, leader), app_uuid)

    def _run_flight(
        self, app_uuid: str, flight: Future[_Entry | None], leader: bool
    ) -> _Entry | None:
        """Run the fetch (leader) or wait for it (followers), on this thread."""
        if leader:
            try:
                result = self._fetch(app_uuid)
            except BaseException as exc:
                flight.set_exception(exc)
                raise
            else:
                flight.set_result(result)
            finally:
                self._land(app_uuid, flight)
        try:
            return flight.result(timeout=self._wait_limit())
        except TimeoutError:
            raise UnableToAuthenticateError("timed out waiting for the MAuth service") from None

    # --- one single-flight for threads and event loops (issue 11 item 2) -------------------

    def _join(
        self, app_uuid: str, *, fast_fail: bool = False
    ) -> tuple[Future[_Entry | None], bool]:
        """The fetch in flight for ``app_uuid`` and whether the caller leads it (starts
        it); raises when the app is cached as unknown. A thread and a task asking at
        once share one :class:`concurrent.futures.Future`, so one fetch."""
        with self._lock:
            if app_uuid in self._unknown:
                raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
            flight = self._in_flight.get(app_uuid)
            if flight is not None:
                return flight, False
            if fast_fail and self._clock() < self._open_until:  # the circuit breaker
                raise UnableToAuthenticateError(
                    f"the MAuth service failed a moment ago; not asking it for the key of "
                    f"app {app_uuid!r} for {self.config.lookup_failure_cooldown:g} s"
                )
            flight = self._in_flight[app_uuid] = Future()
            return flight, True

    def _land(self, app_uuid: str, flight: Future[_Entry | None]) -> None:
        with self._lock:
            if self._in_flight.get(app_uuid) is flight:
                del self._in_flight[app_uuid]

    def _wait_limit(self) -> float:
        # Followers wait no longer than the leader can take.
        config = self.config
        return (config.connect_timeout + config.read_timeout) * (config.retries + 1) + 5

    async def aget_public_key(self, app_uuid: str) -> rsa.RSAPublicKey:
        """:meth:`get_public_key` for an event loop (asyncio): a missing key is fetched
        on ``httpx.AsyncClient`` (:class:`AsyncMAuthServiceClient`), not in a thread.

        Same cache and same single-flight as the blocking method: whichever of a
        thread or a task asks first fetches, the others wait for that fetch. The
        fetch runs as its own task, so cancelling a waiting request (its client went
        away) cancels only its wait: the fetch finishes for the others, and the
        in-flight entry is always cleared.
        """
        entry = self._keys.get(app_uuid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        uid = app_uuid.lower()
        entry = self._keys.get(uid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        try:
            return await self._async_lookup(uid)
        except UnableToAuthenticateError:
            stale = self._stale_key(uid)
            if stale is None:
                raise
            return stale

    async def _async_lookup(self, app_uuid: str) -> rsa.RSAPublicKey:
        if not _httpx_installed():  # no async transport: the blocking fetch, in a thread
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._blocking_lookup, app_uuid)
        flight, leader = self._join(app_uuid, fast_fail=True)
        if leader:
            task = asyncio.get_running_loop().create_task(self._fetch_async(app_uuid, flight))
            self._fetch_tasks.add(task)
            task.add_done_callback(self._fetch_tasks.discard)
        try:
            # shield: a waiter's cancellation (or timeout) must not cancel the shared
            # Future, which wrap_future would otherwise do.
            result = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(flight)), self._wait_limit()
            )
        except asyncio.TimeoutError:
            raise UnableToAuthenticateError("timed out waiting for the MAuth service") from None
        return _key_of(result, app_uuid)

    @observability.observed_async_key_fetch  # a key_fetch event and span (issue 13)
    async def _fetch_async(self, app_uuid: str, flight: Future[_Entry | None]) -> None:
        try:
            with self._lock:
                self.fetch_count += 1
            try:
                answer = await self._async_service().security_token(app_uuid)
            except UnableToAuthenticateError:
                self._trip()
                raise
            self._recovered()
            result = self._accept(app_uuid, answer.key, answer.ttl)
        except asyncio.CancelledError:  # the loop is shutting down
            flight.set_exception(UnableToAuthenticateError("the key fetch was cancelled"))
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            flight.set_result(result)
        finally:
            self._land(app_uuid, flight)

    def _async_service(self) -> AsyncMAuthServiceClient:
        if self._async_client is None:
            from .key_service_httpx import AsyncMAuthServiceClient

            self._async_client = AsyncMAuthServiceClient(self.config)
        return self._async_client

    def _accept(self, app_uuid: str, key: rsa.RSAPublicKey | None, ttl: float) -> _Entry | None:
        """Cache a fetch's answer: a key for ``ttl`` seconds (not at all for 0), or the
        app as unknown (``key`` None) for the negative-cache time."""
        if key is None:
            with self._lock:
                self._unknown[app_uuid] = True
                self._keys.pop(app_uuid, None)  # deleted at the service: stop trusting it
            logger.warning("MAuth service does not know app %r (404)", app_uuid)
            return None
        now = self._clock()
        entry = _Entry(key, now + ttl, now)
        if ttl > 0:
            with self._lock:
                self._store(app_uuid, entry)
        return entry

    def cached_key(self, app_uuid: str) -> rsa.RSAPublicKey | None:
        """Without blocking or fetching: the cached key, or None when a fetch would be
        needed; raises :class:`InauthenticError` when the app is cached as unknown.
        Lets an event loop verify inline when no I/O is needed."""
        entry = self._keys.get(app_uuid) or self._keys.get(app_uuid.lower())
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        with self._lock:  # held only for dictionary updates, never across a fetch
            unknown = app_uuid.lower() in self._unknown
        if unknown:
            raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
        return None

    @observability.observed_key_fetch  # a key_fetch event and span (issue 13)
    def _fetch(self, app_uuid: str) -> _Entry | None:
        # The same request, answer checks and breaker rule as the async fetch: the
        # protocol (key_service) builds the call and judges the answer (section 5).
        with self._lock:
            self.fetch_count += 1
        try:
            answer = self.client.security_token(app_uuid)
        except UnableToAuthenticateError:
            self._trip()
            raise
        self._recovered()
        return self._accept(app_uuid, answer.key, answer.ttl)

    def _store(self, app_uuid: str, entry: _Entry) -> None:
        keys = self._keys
        keys.pop(app_uuid, None)
        if len(keys) >= self.config.key_cache_size:
            limit = self._clock() - self.config.max_stale
            for stale in [k for k, e in keys.items() if e.expires_at <= limit]:
                del keys[stale]
            while len(keys) >= max(self.config.key_cache_size, 1):
                del keys[next(iter(keys))]  # the oldest insertion
        keys[app_uuid] = entry

    def refresh_public_key(
        self, app_uuid: str, failed_key: object = None
    ) -> rsa.RSAPublicKey | None:
        """A signature failed with ``failed_key``: the app's key may have been rotated.

        Returns a key to try again (None: nothing new). Fetches only when the cached
        key is older than ``min_key_refetch_interval`` and no refetch of this app
        happened within it; concurrent callers share one fetch.
        """
        uid = app_uuid.lower()
        interval = self.config.min_key_refetch_interval
        with self._lock:
            entry = self._keys.get(uid)
            if entry is not None and failed_key is not None and entry.key is not failed_key:
                return entry.key  # refreshed by another request since
            flight = self._in_flight.get(uid)
            leader = False
            if flight is None:
                now = self._clock()
                if entry is None or now - entry.fetched_at < interval or uid in self._refetched:
                    return None
                if now < self._open_until:
                    return None
                self._refetched[uid] = now
                flight = self._in_flight[uid] = Future()
                leader = True
        try:
            result = self._run_flight(uid, flight, leader)
        except (InauthenticError, UnableToAuthenticateError):
            return None
        if result is None:
            return None
        logger.info("MAuth: fetched the public key of app %r again after a failure", uid)
        return result.key

    def invalidate(self, app_uuid: str | None = None) -> None:
        """Forget the cached key (and cached 404) of ``app_uuid``, or of every app."""
        with self._lock:
            if app_uuid is None:
                self._keys.clear()
                self._unknown.clear()
                self._refetched.clear()
                self._open_until = float("-inf")
                return
            uid = app_uuid.lower()
            self._keys.pop(uid, None)
            self._unknown.pop(uid, None)
            self._refetched.pop(uid, None)

    def clear(self) -> None:
        """Forget every cached key and every cached 404."""
        self.invalidate()

    # --- failures ---------------------------------------------------------------------

    def _trip(self) -> None:
        """The service failed: fail fast for a while (logged once per outage)."""
        cooldown = self.config.lookup_failure_cooldown
        with self._lock:
            self._open_until = self._clock() + cooldown
            first = not self._outage
            self._outage = True
        if first:
            logger.error(
                "MAuth service lookups are failing: key lookups fail fast for %g s after each "
                "failure (expired keys are used for up to %g s)",
                cooldown,
                self.config.max_stale,
            )

    def _recovered(self) -> None:
        if self._outage:
            with self._lock:
                self._outage = False
                self._open_until = float("-inf")
            logger.warning("MAuth service lookups work again")

    def _stale_key(self, uid: str) -> rsa.RSAPublicKey | None:
        entry = self._keys.get(uid)
        if entry is None:
            return None
        now = self._clock()
        late = now - entry.expires_at
        if late >= self.config.max_stale:
            return None
        with self._lock:
            logged = uid in self._stale_logged
            self._stale_logged[uid] = True
        if not logged:
            logger.warning(
                "MAuth: using the public key of app %r, expired %d s ago, because the MAuth "
                "service is failing (max_stale %g s)",
                uid,
                late,
                self.config.max_stale,
            )
        return entry.key


@functools.cache
def _httpx_installed() -> bool:
    return importlib.util.find_spec("httpx") is not None


def _key_of(result: _Entry | None, app_uuid: str) -> rsa.RSAPublicKey:
    if result is None:
        raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
    return result.key
