"""The ``requests`` transport of the MAuth service protocol (:mod:`mauth_client.key_service`).

:class:`MAuthServiceClient` sends the protocol's signed requests on one persistent
session, without following redirects (the protocol decides), reads at most 64 KiB
of an answer, and enforces each call's whole deadline with a watchdog that cuts the
connection, since requests' own timeouts only bound each socket read. After
``os.fork()`` the child drops the parent's connections.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json as _json
import socket
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import forksafe
from .config import Config
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
    run,
)

if TYPE_CHECKING:  # requests is imported when a client is built: importing stays light
    import requests
    import requests.adapters

__all__ = ["MAuthServiceClient"]


class MAuthServiceClient:
    """Signed calls to the MAuth service over ``requests``: the transport of
    :class:`~mauth_client.key_service.KeyServiceProtocol`, whose rules it follows
    (whole-call deadline, bounded retries, same-origin redirects only, 64 KiB answers).

    One persistent session; after ``os.fork()`` the child gets fresh connections.
    """

    def __init__(self, config: Config, *, session: requests.Session | None = None) -> None:
        import requests

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
        self.session.mount(f"{parts.scheme}://{parts.netloc}/", _service_adapter()())

    def _after_fork_in_child(self) -> None:
        # The parent's pooled sockets are shared with it: drop them unclosed (closing
        # could take a lock a parent thread held at the fork) and start afresh.
        if self._own_session:
            import requests

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
        import requests

        request = step.request
        watch = _watchdog.watch(step.deadline)
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


def _read_capped(response: requests.Response, step: Send, watch: _Watch) -> bytes:
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
        import urllib3.exceptions

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
# blocked read at once, headers or body. One thread serves every call in progress.

_watching = threading.local()


class _Watch:
    """One call's deadline and the socket to cut when it passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self.done = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def stop(self) -> None:
        with self._lock:
            self.done = True
            self._sock = None


class _Watchdog:
    """A daemon thread firing the deadlines of the calls in progress, earliest first.

    Finished calls stay in the heap until they reach its top, then are dropped
    without waiting; every call has the same duration, so a new one rarely becomes
    the earliest and seldom wakes the thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        forksafe.register(self)

    def watch(self, deadline: float) -> _Watch:
        watch = _Watch(deadline)
        with self._cond:
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mauth-client-deadlines", daemon=True
                )
                self._thread.start()
            elif earliest:
                self._cond.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                watch = heapq.heappop(self._heap)[2]
            watch.fire()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and its condition may be held.
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


_watchdog = _Watchdog()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@functools.cache
def _service_adapter() -> type[requests.adapters.HTTPAdapter]:
    """requests' adapter with connections the watchdog can cut (built on first use, so
    that importing this module does not import requests)."""
    import requests.adapters
    import urllib3
    import urllib3.connection
    import urllib3.response

    def watched(base: type[urllib3.connection.HTTPConnection]) -> Any:
        class Watched(base):  # type: ignore[valid-type,misc]
            def getresponse(self) -> urllib3.response.HTTPResponse:
                watch = getattr(_watching, "watch", None)
                if watch is not None and self.sock is not None:
                    watch.attach(self.sock)
                return super().getresponse()  # type: ignore[no-any-return]

        return Watched

    class HTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = watched(urllib3.connection.HTTPConnection)

    class HTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = watched(urllib3.connection.HTTPSConnection)

    pools = {"http": HTTPPool, "https": HTTPSPool}

    class ServiceAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
            manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **kwargs)
            if hasattr(manager, "pool_classes_by_scheme"):
                manager.pool_classes_by_scheme = pools
            return manager

    return ServiceAdapter
