"""Where public keys come from, and the MAuth service client (``mauth-protocol.md`` section 5).

- :class:`StaticKeySource`: a fixed mapping of app UUID to public key.
- :class:`LocalKeySource`: keys fetched from the MAuth service, cached for their
  response's ``max-age``; one fetch per app UUID however many threads ask at once;
  404s cached negatively for a short time; both caches bounded.
- :class:`MAuthServiceClient`: the signed HTTP calls to the service, with timeouts
  and bounded retries on one persistent session.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

import requests
from cachetools import TTLCache
from cryptography.hazmat.primitives.asymmetric import rsa

from .config import Config, redact_url
from .exceptions import InauthenticError, KeyFormatError, UnableToAuthenticateError
from .keys import PublicKeyData, load_public_key

logger = logging.getLogger("mauth_client")

Clock = Callable[[], float]
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


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


def max_age(cache_control: str | None, default: int, ceiling: int) -> int:
    """Seconds a response may be cached per ``Cache-Control: max-age`` (``default`` if absent)."""
    if cache_control:
        if re.search(r"\b(no-store|no-cache)\b", cache_control, re.IGNORECASE):
            return 0
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(int(match.group(1)[:9]), ceiling)
    return default


class MAuthServiceClient:
    """Signed calls to the MAuth service, with timeouts and bounded retries.

    Connection errors and 5xx answers are retried ``config.retries`` times with
    exponential backoff; read timeouts are not (they already waited long enough).
    """

    def __init__(self, config: Config, *, session: requests.Session | None = None) -> None:
        config.require("mauth_url", "app_uuid", "private_key")
        assert config.mauth_url is not None
        self.config = config
        self.base = f"{config.mauth_url.rstrip('/')}/mauth/{config.mauth_api_version}"
        self.shown_url = redact_url(config.mauth_url)  # for messages: no credentials
        from .requests_mauth import MAuth  # here, not at the top: requests_mauth imports us

        self.session = session or requests.Session()
        self.session.auth = MAuth(config=config)
        self.session.headers["User-Agent"] = "mauth-client-python/2"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a signed request; raise :class:`UnableToAuthenticateError` when the
        service cannot be reached or keeps answering 5xx."""
        url = self.base + path
        timeout = (self.config.connect_timeout, self.config.read_timeout)
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.session.request(method, url, timeout=timeout, **kwargs)
            except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
                if last:
                    raise UnableToAuthenticateError(
                        f"the MAuth service at {self.shown_url} could not be reached "
                        f"({type(exc).__name__})"
                    ) from None
            except requests.exceptions.Timeout as exc:
                raise UnableToAuthenticateError(
                    f"the MAuth service at {self.shown_url} did not answer within "
                    f"{self.config.read_timeout} s ({type(exc).__name__})"
                ) from None
            except requests.exceptions.RequestException as exc:
                raise UnableToAuthenticateError(
                    f"calling the MAuth service failed ({type(exc).__name__})"
                ) from None
            else:
                if response.status_code < 500 or last:
                    return response
            time.sleep(self.config.retry_backoff * (2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.session.close()


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

    def cached_key(self, app_uuid: str) -> rsa.RSAPublicKey | None:
        """Without blocking or fetching: the cached key, or None when a fetch would be
        needed; raises :class:`InauthenticError` when the app is cached as unknown.
        Lets an event loop verify inline when no I/O is needed."""
        entry = self._keys.get(app_uuid)
        if entry is not None and entry.expires_at > self._clock():
            return entry.key
        with self._lock:  # held only for dictionary updates, never across a fetch
            unknown = app_uuid in self._unknown
        if unknown:
            raise InauthenticError(f"app {app_uuid!r} is not known to the MAuth service")
        return None

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
    what = f"the MAuth service's answer for app {app_uuid!r}"
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise UnableToAuthenticateError(f"{what} is not JSON") from None
    token = document.get("security_token") if isinstance(document, dict) else None
    pem = token.get("public_key_str") if isinstance(token, dict) else None
    if not isinstance(pem, str) or not pem.strip():
        raise UnableToAuthenticateError(f"{what} has no security_token.public_key_str")
    try:
        return load_public_key(pem)
    except KeyFormatError:
        raise UnableToAuthenticateError(f"{what} holds a public key that does not parse") from None
