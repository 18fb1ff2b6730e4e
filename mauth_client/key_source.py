"""Where public keys come from, and the MAuth service client (``mauth-protocol.md`` section 5).

- :class:`StaticKeySource`: a fixed mapping of app UUID to public key.
- :class:`LocalKeySource`: keys fetched from the MAuth service, cached for their
  response's ``max-age``; one fetch per app UUID however many threads ask at once;
  404s cached negatively for a short time; both caches bounded.
- :class:`MAuthServiceClient`: the signed HTTP calls to the service, with timeouts
  and bounded retries on one persistent session.
"""

from __future__ import annotations

import contextlib
import json as _json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.response
from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric import rsa

from . import forksafe
from .config import Config
from .exceptions import InauthenticError, UnableToAuthenticateError
from .key_service import (
    AnswerTooLarge,
    KeyAnswer,
    KeyServiceProtocol,
    Send,
    ServiceAnswer,
    ServiceRequest,
    ServiceTimedOut,
    ServiceUnreachable,
    TransportFailure,
    max_age,
    parse_security_token,
    run,
)
from .keys import PublicKeyData, load_public_key

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


class MAuthServiceClient:
    """Signed calls to the MAuth service over ``requests``: the transport of
    :class:`~mauth_client.key_service.KeyServiceProtocol`, whose rules it follows
    (whole-call deadline, bounded retries, same-origin redirects only, 64 KiB answers).

    One persistent session; after ``os.fork()`` the child gets fresh connections.
    """

    def __init__(self, config: Config, *, session: requests.Session | None = None) -> None:
        self.protocol = KeyServiceProtocol(config)
        self.config = config
        self.base = self.protocol.base
        self.shown_url = self.protocol.shown_url  # for messages: no credentials
        self._own_session = session is None
        self.session = session or requests.Session()
        self._mount()
        forksafe.register(self)

    def _mount(self) -> None:
        # Only the service's own URLs go through the watched adapter, so a session the
        # caller passed in keeps its behaviour everywhere else.
        parts = urlsplit(self.base)
        self.session.mount(f"{parts.scheme}://{parts.netloc}/", _ServiceAdapter())

    def _after_fork_in_child(self) -> None:
        # The parent's pooled sockets are shared with it: drop them unclosed (closing
        # could take a lock a parent thread held at the fork) and start afresh.
        if self._own_session:
            self.session = requests.Session()
        self._mount()

    # --- calls ---------------------------------------------------------------------------

    def call(self, request: ServiceRequest) -> ServiceAnswer:
        """Send a signed request under the protocol's rules; the final answer."""
        return run(self.protocol.call(request), lambda step: self._send(step)[1])

    def security_token(self, app_uuid: str) -> KeyAnswer:
        """The public key of ``app_uuid`` (None if unknown) and seconds to cache it."""
        answer = self.call(self.protocol.security_token_request(app_uuid))
        return self.protocol.security_token_answer(answer, app_uuid)

    def request(
        self, method: str, path: str, *, json: Any = None, data: bytes | None = None
    ) -> requests.Response:
        """Send a signed request to ``base + path`` (``json`` or ``data`` as its body);
        raise :class:`UnableToAuthenticateError` when the service cannot be reached,
        keeps answering 5xx, answers too slowly or too much, or redirects elsewhere."""
        content_type = None
        body = data or b""
        if json is not None:
            body = _json.dumps(json).encode()
            content_type = "application/json"
        last: list[requests.Response] = []

        def send(step: Send) -> ServiceAnswer:
            response, answer = self._send(step)
            last[:] = [response]
            return answer

        run(
            self.protocol.call(self.protocol.sign(method, self.base + path, body, content_type)),
            send,
        )
        return last[0]

    def _send(self, step: Send) -> tuple[requests.Response, ServiceAnswer]:
        """One request, no redirects, the answer read in full by the step's deadline."""
        request = step.request
        watch = _Watchdog(step.deadline)
        _watching.watch = watch
        try:
            try:
                response = self.session.request(
                    request.method,
                    request.url,
                    data=request.body or None,
                    headers=dict(request.headers),
                    timeout=(step.connect_timeout, step.read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
                if watch.fired or isinstance(exc, requests.exceptions.ReadTimeout):
                    raise ServiceTimedOut(type(exc).__name__, deadline=watch.fired) from None
                raise ServiceUnreachable(type(exc).__name__) from None
            except requests.exceptions.Timeout as exc:
                raise ServiceTimedOut(type(exc).__name__, deadline=watch.fired) from None
            except requests.exceptions.RequestException as exc:
                raise TransportFailure(type(exc).__name__) from None
            try:
                body = _read_capped(response, step, watch)
                if watch.fired:  # cut while reading: what was read may look whole, is not
                    raise ServiceTimedOut("deadline", deadline=True)
            except BaseException:
                response.close()
                raise
        finally:
            watch.stop()
            _watching.watch = None
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        answer = ServiceAnswer(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, body
        )
        return response, answer

    def close(self) -> None:
        self.session.close()


def _read_capped(response: requests.Response, step: Send, watch: _Watchdog) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > step.max_bytes:
        raise AnswerTooLarge("Content-Length")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.raw.stream(16384, decode_content=True):
            total += len(chunk)
            if total > step.max_bytes:
                raise AnswerTooLarge("body")
            chunks.append(chunk)
            if time.monotonic() >= step.deadline:
                raise ServiceTimedOut("deadline", deadline=True)
    except TransportFailure:
        raise
    except Exception as exc:  # urllib3's read errors, OSError from a shut-down socket
        if watch.fired or time.monotonic() >= step.deadline:
            raise ServiceTimedOut(type(exc).__name__, deadline=True) from None
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            raise ServiceTimedOut(type(exc).__name__) from None
        raise ServiceUnreachable(type(exc).__name__) from None
    return b"".join(chunks)


# --- A hard deadline for requests ------------------------------------------------------
# requests' timeouts bound each socket read, not a whole answer: a service (or anything
# posing as it) that sends one byte per second holds the caller forever. A watchdog
# shuts the connection's socket down when the call's deadline passes, which wakes the
# blocked read at once, headers or body.

_watching = threading.local()


class _Watchdog:
    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def stop(self) -> None:
        with self._lock:
            self._done = True
            self._sock = None
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self) -> urllib3.response.HTTPResponse:  # type: ignore[override]
        watch = getattr(_watching, "watch", None)
        if watch is not None and self.sock is not None:
            watch.attach(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self) -> urllib3.response.HTTPResponse:  # type: ignore[override]
        watch = getattr(_watching, "watch", None)
        if watch is not None and self.sock is not None:
            watch.attach(self.sock)
        return super().getresponse()


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _ServiceAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections the watchdog can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _Entry(NamedTuple):
    key: rsa.RSAPublicKey
    expires_at: float


class LocalKeySource:
    """Public keys from the MAuth service's ``security_tokens`` endpoint, cached.

    Thread-safe. ``clock`` is injectable so tests can move time.
    """

    def __init__(
        self,
        config: Config,
        *,
        client: MAuthServiceClient | None = None,
        clock: Clock = time.time,
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
        self.fetch_count = 0
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # Keep the cached keys; a lock or a fetch in flight belongs to a parent's thread
        # that does not exist here (it would never be released or finish).
        self._lock = threading.Lock()
        self._in_flight = {}

    def get_public_key(self, app_uuid: str) -> rsa.RSAPublicKey:
        entry = self._keys.get(app_uuid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        with self._lock:
            if app_uuid in self._unknown:
                raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
            flight = self._in_flight.get(app_uuid)
            leader = flight is None
            if flight is None:
                flight = self._in_flight[app_uuid] = Future()
        if leader:
            try:
                result = self._fetch(app_uuid)
            except BaseException as exc:
                flight.set_exception(exc)
                raise
            else:
                flight.set_result(result)
            finally:
                with self._lock:
                    del self._in_flight[app_uuid]
        # Followers wait no longer than the leader can take.
        limit = (self.config.connect_timeout + self.config.read_timeout) * (
            self.config.retries + 1
        ) + 5
        try:
            result = flight.result(timeout=limit)
        except TimeoutError:
            raise UnableToAuthenticateError("timed out waiting for the MAuth service") from None
        if result is None:
            raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
        return result.key

    def _fetch(self, app_uuid: str) -> _Entry | None:
        # Percent-encode everything: "../" in a header must not reach another path (section 5).
        path = f"/security_tokens/{quote(app_uuid, safe='')}.json"
        with self._lock:
            self.fetch_count += 1
        response = self.client.request("GET", path)
        if response.status_code == 404:
            with self._lock:
                self._unknown[app_uuid] = True
            logger.warning("MAuth service does not know app %r (404)", app_uuid)
            return None
        if response.status_code != 200:
            raise UnableToAuthenticateError(
                f"the MAuth service answered {response.status_code} when asked for the public "
                f"key of app {app_uuid!r}"
            )
        key = _parse_security_token(response.content, app_uuid)
        ttl = max_age(
            response.headers.get("Cache-Control"),
            self.config.default_key_ttl,
            self.config.max_key_ttl,
        )
        entry = _Entry(key, self._clock() + ttl)
        if ttl > 0:
            with self._lock:
                self._store(app_uuid, entry)
        return entry

    def _store(self, app_uuid: str, entry: _Entry) -> None:
        keys = self._keys
        keys.pop(app_uuid, None)
        if len(keys) >= self.config.key_cache_size:
            now = self._clock()
            for stale in [k for k, e in keys.items() if e.expires_at <= now]:
                del keys[stale]
            while len(keys) >= max(self.config.key_cache_size, 1):
                del keys[next(iter(keys))]  # the oldest insertion
        keys[app_uuid] = entry

    def clear(self) -> None:
        """Forget every cached key and every cached 404."""
        with self._lock:
            self._keys.clear()
            self._unknown.clear()


def _parse_security_token(content: bytes, app_uuid: str) -> rsa.RSAPublicKey:
    # The checks (JSON shape, size, the answer naming the app asked for) live in the
    # framework-free protocol module, shared with every transport.
    return parse_security_token(content, app_uuid)
