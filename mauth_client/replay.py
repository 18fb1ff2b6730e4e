"""Replay protection: each signature is accepted once within the time window.

MAuth signatures carry a time, not a nonce, so a captured request is valid for the
whole window (``mauth-protocol.md`` section 4 step 2: 300 s either way). A
:class:`ReplayCache` remembers every signature of every accepted request until its
time has left the window; a second request with one of them is a replay.

- :class:`MemoryReplayCache`: per process, bounded, thread-safe.
- :class:`RedisReplayCache`: shared by every instance of a fleet, one round trip per
  request (``SET key 1 NX EXAT t`` for each signature, in one atomic script call).
- :class:`ReplayProtection`: the policy the authenticator applies after a request
  was verified: which methods, what a cache failure does (fail closed, or open).

Any object with ``record(keys, expires_at) -> bool`` can be a cache.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import re
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from . import forksafe
from .exceptions import ConfigurationError, ReplayCacheUnavailable, ReplayedRequestError

if TYPE_CHECKING:
    from .signable import Signable
    from .signed import Signed

logger = logging.getLogger("mauth_client")

#: Methods not protected by default: they should not change anything, and a client
#: may legitimately repeat them within a second (see the README's honest limit).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SETTING = "MAUTH_REPLAY_CACHE"
DEFAULT_KEY_PREFIX = "mauth:replay:"


@runtime_checkable
class ReplayCache(Protocol):
    """Remembers signatures until they expire.

    ``record`` stores every key of ``keys`` until ``expires_at`` (epoch seconds) and
    returns True when none of them had been recorded before, atomically: of several
    concurrent calls with the same key, exactly one returns True. It raises
    :class:`ReplayCacheUnavailable` when it cannot tell.
    """

    def record(self, keys: Sequence[str], expires_at: int) -> bool: ...


class MemoryReplayCache:
    """A per-process replay cache, bounded to ``max_entries``.

    Per process: behind a server with several worker processes (gunicorn, uWSGI) a
    replay sent to another worker is not seen; use Redis there.

    Entries are dropped once expired. When the cache is full of unexpired entries
    the oldest go first (logged at WARNING once: protection is then weaker than the
    window); size it for your rate of protected requests times the window.
    """

    def __init__(self, max_entries: int = 200_000, *, clock: Any = None) -> None:
        if max_entries < 1:
            raise ConfigurationError("a MemoryReplayCache needs max_entries >= 1")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, int] = {}  # insertion order is roughly expiry order
        self._warned_full = False
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        """A lock held by another thread at fork time would never be released here."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, keys: Sequence[str], expires_at: int) -> bool:
        entries = self._entries
        get = entries.get
        clock = self._clock
        with self._lock:
            now = time.time() if clock is None else clock()  # None: freezegun sees it
            fresh = True
            for key in keys:
                seen = get(key)
                if seen is None:
                    entries[key] = expires_at
                elif seen > now:
                    # A replay; its other keys are still recorded below, as Redis does, so
                    # (V1, V2) then (V1, V2') keeps both closed.
                    fresh = False
                    if seen < expires_at:
                        entries[key] = expires_at
                else:  # expired: a new entry, at the end of the insertion order
                    del entries[key]
                    entries[key] = expires_at
            if len(entries) > self.max_entries:
                self._shrink(now)
            return fresh

    def _shrink(self, now: float) -> None:
        entries = self._entries
        for key in [k for k, until in entries.items() if until <= now]:
            del entries[key]
        if len(entries) > self.max_entries and not self._warned_full:
            self._warned_full = True
            logger.warning(
                "MAuth replay cache is full (%d entries within the time window): the oldest "
                "are dropped, so replay protection is weaker; raise max_entries",
                self.max_entries,
            )
        while len(entries) > self.max_entries:
            del entries[next(iter(entries))]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# SET NX EXAT for every key; 1 when all were new. Keys are set even when one existed,
# as the memory cache does.
_RECORD_ALL = """
local fresh = 1
for _, key in ipairs(KEYS) do
  if not redis.call('SET', key, '1', 'NX', 'EXAT', ARGV[1]) then fresh = 0 end
end
return fresh
"""


class RedisReplayCache:
    """A replay cache in Redis, shared by every instance of a fleet.

    ``target`` is a ``redis://`` / ``rediss://`` URL (``redis://:password@host:6379/0``)
    or a ready ``redis.Redis`` client. Each request is one round trip: ``SET key 1 NX
    EXAT expires_at``, or for a request signed with V1 and V2 a small Lua script doing
    that SET for each signature atomically (``EVALSHA``). Needs Redis
    6.2 or later (``EXAT``) and the ``redis`` package (``pip install 'mauth-client[redis]'``).
    """

    def __init__(
        self,
        target: str | Any,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        max_connections: int = 50,
    ) -> None:
        self.key_prefix = key_prefix
        if isinstance(target, str):
            check_redis_url(target)
            try:
                import redis
            except ImportError:
                raise ConfigurationError(
                    f"{SETTING} names a Redis server; that needs the redis package: "
                    "pip install 'mauth-client[redis]'"
                ) from None
            self.shown = _safe(target)
            self._password = urlsplit(target).password
            try:
                self.client = redis.Redis.from_url(
                    target,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=connect_timeout,
                    max_connections=max_connections,
                    retry_on_timeout=False,
                )
            except ValueError as exc:
                raise ConfigurationError(
                    f"{SETTING} is not a usable Redis URL ({self.shown}): {self._scrub(str(exc))}"
                ) from None
        else:
            self.client = target
            kwargs = getattr(getattr(target, "connection_pool", None), "connection_kwargs", {})
            self._password = kwargs.get("password")
            host, port = kwargs.get("host", "?"), kwargs.get("port", "?")
            self.shown = f"redis://{host}:{port}/{kwargs.get('db', 0)}"
        # EVALSHA, loaded again by redis-py after a NOSCRIPT (a restarted server).
        self._record_all = self.client.register_script(_RECORD_ALL)

    def __repr__(self) -> str:
        return f"RedisReplayCache({self.shown!r})"

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(str(self._password), "***")
        return text

    def _unavailable(self, exc: Exception, doing: str) -> ReplayCacheUnavailable:
        return ReplayCacheUnavailable(
            f"the replay cache ({SETTING}={self.shown}) failed {doing}: "
            f"{type(exc).__name__}: {self._scrub(str(exc))}"
        )

    def record(self, keys: Sequence[str], expires_at: int) -> bool:
        import redis

        prefixed = [self.key_prefix + key for key in keys]
        try:
            if len(prefixed) == 1:
                answer = self.client.set(prefixed[0], b"1", nx=True, exat=int(expires_at))
                return answer is True
            # Several signatures: one script, so one round trip, and atomic, so that two
            # requests sharing two signatures cannot each win one of them.
            return bool(self._record_all(keys=prefixed, args=[int(expires_at)]))
        except redis.RedisError as exc:
            raise self._unavailable(exc, "to record a signature") from None

    def check(self) -> None:
        """PING the server: :class:`ConfigurationError` when it refuses our credentials
        or is not Redis 6.2+, :class:`ReplayCacheUnavailable` when it cannot be reached."""
        import redis

        try:
            self.client.ping()
        except redis.AuthenticationError as exc:
            raise ConfigurationError(
                f"the Redis server of {SETTING} ({self.shown}) refused our credentials "
                f"({type(exc).__name__}); put the password in the URL: "
                "redis://:PASSWORD@host:port/db"
            ) from None
        except redis.ResponseError as exc:
            text = self._scrub(str(exc))
            if "NOAUTH" in text or "WRONGPASS" in text:
                raise ConfigurationError(
                    f"the Redis server of {SETTING} ({self.shown}) needs a password "
                    f"({text}); put it in the URL: redis://:PASSWORD@host:port/db"
                ) from None
            raise ConfigurationError(
                f"the Redis server of {SETTING} ({self.shown}) answered an error: {text}"
            ) from None
        except redis.RedisError as exc:
            raise self._unavailable(exc, "to answer PING") from None
        try:
            version = str(self.client.info("server").get("redis_version", ""))
        except redis.RedisError:
            return  # INFO may be disabled (managed Redis): the first SET will tell
        major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if major_minor and major_minor < (6, 2):
            raise ConfigurationError(
                f"the Redis server of {SETTING} ({self.shown}) is version {version}; "
                "replay protection needs 6.2 or later (SET ... EXAT)"
            )

    def close(self) -> None:
        self.client.close()


def _safe(url: str) -> str:
    """``url`` for a message: no credentials, even in a malformed URL."""
    return re.sub(r"^([a-z]+://)?.*@", lambda m: (m.group(1) or "") + "***@", url, flags=re.I)


def check_redis_url(url: str) -> None:
    """Raise :class:`ConfigurationError` unless ``url`` looks like a Redis URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"{SETTING} must be 'memory' or a redis:// or rediss:// URL, not {_safe(url)!r}"
        ) from None
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.hostname
    ):
        raise ConfigurationError(
            f"{SETTING} must be 'memory' or a redis:// or rediss:// URL "
            f"(redis://host:6379/0), not {_safe(url)!r}"
        )
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ConfigurationError(
            f"{SETTING} names database {database!r}; a Redis database is a number "
            f"(redis://host:6379/0), in {_safe(url)!r}"
        )
    del port


def check_replay_setting(value: object) -> None:
    """Validate a ``replay_cache`` setting without connecting anywhere."""
    if value is None or isinstance(value, ReplayCache):
        return
    if not isinstance(value, str):
        raise ConfigurationError(
            f"replay_cache must be 'memory', a Redis URL or a ReplayCache, not "
            f"{type(value).__name__}"
        )
    if value.strip().lower() in ("memory", ""):
        return
    check_redis_url(value.strip())


def cache_from_setting(value: str | ReplayCache | None, *, clock: Any = None) -> ReplayCache | None:
    """The cache a ``replay_cache`` setting names: None, ``"memory"``, a Redis URL
    (checked with a PING: bad credentials raise :class:`ConfigurationError`; an
    unreachable server is logged and gives 503s until it answers) or a cache."""
    if value is None or isinstance(value, ReplayCache):
        return value
    text = value.strip()
    if not text:
        return None
    if text.lower() == "memory":
        return MemoryReplayCache(clock=clock)  # the authenticator's clock: one timeline
    cache = RedisReplayCache(text)
    try:
        cache.check()
    except ReplayCacheUnavailable as exc:
        logger.warning("MAuth replay protection: %s; retrying on each request", exc)
    return cache


def parse_methods(value: str | Collection[str] | None) -> frozenset[str] | None:
    """``"POST,PUT"`` or a collection to upper-case method names; None (every method
    but GET, HEAD and OPTIONS) for None or ``"default"``; ``"*"`` for all."""
    if value is None:
        return None
    items: Iterable[str] = value.split(",") if isinstance(value, str) else value
    names = {str(item).strip().upper() for item in items} - {""}
    if not names or names == {"DEFAULT"}:
        return None
    for name in names:
        if name != "*" and not (name.isascii() and name.isalpha()):
            raise ConfigurationError(
                f"MAUTH_REPLAY_METHODS must list HTTP methods (POST,PUT,PATCH,DELETE) or '*', "
                f"not {name!r}"
            )
    return frozenset(names)


_PREFIXES = {1: "v1:", 2: "v2:"}
_a2b = binascii.a2b_base64


def signature_key(version: int, signature: str | None) -> str:
    """The cache key of one signature: ``v<version>:`` and the hex of its last 16 bytes.

    It is made from the signature's bytes, not its text: base64 leaves unused bits in
    the last character, so one signature has several spellings that decode (and
    verify) the same. The low-order bytes of an RSA signature are the same however
    many leading zero bytes it is sent with (V1 is checked by OpenSSL's RSA public
    decrypt, which accepts a shortened signature), and a valid signature cannot be
    chosen, so 128 bits of it identify it. Only the last 24 characters (whole base64
    groups, since a valid length is a multiple of 4) are decoded: cheap on the hot path.
    """
    prefix = _PREFIXES.get(version) or f"v{version}:"
    text = signature or ""
    if len(text) >= 24 and not len(text) % 4:
        try:
            tail = _a2b(text[-24:])
        except (binascii.Error, ValueError):
            pass
        else:
            if len(tail) >= 16:
                return prefix + tail[-16:].hex()
    # Not base64, so it did not verify (the other signature did): key its text.
    return prefix + "t" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def signature_keys(signed: Signed) -> list[str]:
    """One key per signature the message carries (V2 first): see :func:`signature_key`."""
    return [
        signature_key(info.version, info.signature)
        for info in (signed.v2, signed.v1)
        if info is not None
    ]


class ReplayProtection:
    """What the authenticator does with a :class:`ReplayCache` after a request passed.

    ``methods``: the protected methods (None: all but GET, HEAD and OPTIONS).
    ``fail_open``: when the cache fails, accept the request (ERROR logged once per
    ``log_interval`` seconds) instead of raising :class:`ReplayCacheUnavailable` (503).
    """

    def __init__(
        self,
        cache: ReplayCache,
        *,
        methods: str | Collection[str] | None = None,
        fail_open: bool = False,
        time_window: int = 300,
        log_interval: float = 60.0,
    ) -> None:
        self.cache = cache
        self.methods = parse_methods(methods)
        self.fail_open = fail_open
        self.time_window = time_window
        self.log_interval = log_interval
        self._last_logged = float("-inf")

    @property
    def blocking(self) -> bool:
        """True when recording may wait on the network (anything but the memory cache):
        async adapters then run the check in a worker thread, off the event loop."""
        return not isinstance(self.cache, MemoryReplayCache)

    def protects(self, method: str) -> bool:
        return method not in self._skip and (self._only is None or method in self._only)

    @property
    def methods(self) -> frozenset[str] | None:
        return self._methods

    @methods.setter
    def methods(self, value: frozenset[str] | None) -> None:
        self._methods = value
        # Precomputed for the hot path: one or two set lookups per request.
        if value is None:
            self._skip, self._only = SAFE_METHODS, None
        elif "*" in value:
            self._skip, self._only = frozenset(), None
        else:
            self._skip, self._only = frozenset(), value

    def check(self, signable: Signable, signed: Signed) -> None:
        """Record the signatures of a verified request; raise
        :class:`ReplayedRequestError` if one of them was seen before."""
        method = getattr(signable, "method", None)
        if method is None or method in self._skip or (self._only and method not in self._only):
            return  # responses and unprotected methods
        # The headers' text, not signed.v1/.v2: a V2-authenticated request never had
        # its V1 header parsed, and for a well-formed header the signature is what
        # follows the last ":" (and precedes V2's final ";"), as the parser reads it.
        keys = []
        latest = 0
        v2 = signed.mcc_authentication
        if v2:
            tail = v2.rpartition(":")[2]
            keys.append(signature_key(2, tail[:-1] if tail.endswith(";") else tail))
            when = signed.mcc_time
            if when.isdigit() and len(when) <= 12:
                latest = int(when)
        v1 = signed.x_mws_authentication
        if v1:
            keys.append(signature_key(1, v1.rpartition(":")[2]))
            when = signed.x_mws_time
            if when.isdigit() and len(when) <= 12 and int(when) > latest:
                latest = int(when)
        if not keys:
            return
        # Keep each key until its time has left the window (inclusive), then one more second.
        expires_at = (latest or int(time.time())) + self.time_window + 1
        try:
            fresh = self.cache.record(keys, expires_at)
        except ReplayCacheUnavailable as exc:
            if not self.fail_open:
                raise
            now = time.monotonic()
            if now - self._last_logged >= self.log_interval:
                self._last_logged = now
                logger.error(
                    "MAuth replay protection is OFF while the cache fails "
                    "(MAUTH_REPLAY_FAIL_OPEN=true): %s",
                    exc,
                )
            return
        if not fresh:
            app = (signed.v2 or signed.v1).app_uuid  # type: ignore[union-attr]
            raise ReplayedRequestError(
                f"this request is a replay: a request with the same signature from app "
                f"{app!r} was already accepted; sign every request afresh"
            )
