"""One configuration object, built from arguments or from the environment.

Environment names are those of ``mauth-protocol.md`` section 6. The environment is
read when a :class:`Config` is built (``Config.from_env()``), never at import time.
Upstream code that reads ``Config.APP_UUID`` and friends on the class still works:
those names resolve against the environment at the moment they are read, unless a
test suite assigned them on the class, as it could upstream.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlsplit

from .exceptions import ConfigurationError, MissingConfigurationError
from .keys import bare_der_private_key_pem, looks_like_pem
from .permissions import Permissions, PermissionsSpec, load_permissions
from .signer import check_app_uuid, parse_sign_versions

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_API_VERSION = re.compile(r"v[0-9]+")

# Every environment variable Config.from_env reads (mauth-protocol.md section 6).
ENV_NAMES = (
    "APP_UUID",
    "MAUTH_APP_UUID",
    "PRIVATE_KEY",
    "MAUTH_PRIVATE_KEY",
    "MAUTH_PRIVATE_KEY_FILE",
    "MAUTH_URL",
    "MAUTH_API_VERSION",
    "MAUTH_MODE",
    "MAUTH_SIGN_VERSIONS",
    "V2_ONLY_AUTHENTICATE",
    "MAUTH_V2_ONLY_AUTHENTICATE",
    "MAUTH_DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE",
    # replay protection and key caching (issue 12)
    "MAUTH_REPLAY_CACHE",
    "MAUTH_REPLAY_METHODS",
    "MAUTH_REPLAY_FAIL_OPEN",
    "MAUTH_MIN_KEY_REFETCH_INTERVAL",
    "MAUTH_MAX_STALE",
    # The MAuth service client (net): see the fields of the same names.
    "MAUTH_ALLOW_INSECURE_URL",
    "MAUTH_LOOKUP_DEADLINE",
    # request guard (issue 10)
    "MAUTH_MAX_BODY_SIZE",
    # authorization and observability (issue 13)
    "MAUTH_PERMISSIONS_FILE",
    "MAUTH_ERROR_DETAIL",
    "MAUTH_FAILURE_LOG_LEVEL",
)

# Upstream attribute name -> field of a Config instance.
_UPSTREAM_NAMES = {
    "APP_UUID": "app_uuid",
    "MAUTH_URL": "mauth_url",
    "MAUTH_API_VERSION": "mauth_api_version",
    "MAUTH_MODE": "mauth_mode",
    "PRIVATE_KEY": "private_key",
    "V2_ONLY_AUTHENTICATE": "v2_only_authenticate",
    "SIGN_VERSIONS": "sign_versions",
    "DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE": "disable_fallback_to_v1_on_v2_failure",
}


def redact_url(url: str | None) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs.

    The user information ends at the last ``@`` before the path (RFC 3986 section
    3.2), so a password holding an ``@`` is cut whole.
    """
    if not url:
        return ""
    return re.sub(r"(?<=://)[^/?#]*@", "***@", url)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*")


def without_urls(message: str) -> str:
    """``message`` with every URL replaced, for error bodies: callers need not learn
    where the MAuth service is (nor, were a URL unredacted, its credentials)."""
    return _URL.sub("<MAuth service>", message)


_URL_FIELDS = ("mauth_url", "replay_cache")  # shown without credentials
# --- The MAuth service URL policy (net) ---
_warned_insecure: set[str] = set()
_warned_lock = threading.Lock()


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (also written IPv4-mapped)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def check_service_url(url: str, *, allow_insecure: bool) -> None:
    """Refuse an ``http://`` MAuth service URL outside loopback unless ``allow_insecure``.

    Keys and authentication verdicts fetched in clear text can be replaced in transit,
    which lets anyone on the path impersonate any app. Loopback stays allowed (local
    test services); ``MAUTH_ALLOW_INSECURE_URL=true`` allows the rest, with a WARNING
    logged once per URL.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if is_loopback_host(host):
        return
    shown = redact_url(url)
    if not allow_insecure:
        raise ConfigurationError(
            f"MAUTH_URL {shown!r} is plain http outside loopback: use https, or set "
            "MAUTH_ALLOW_INSECURE_URL=true to accept keys sent in clear text"
        )
    with _warned_lock:
        first = shown not in _warned_insecure
        _warned_insecure.add(shown)
    if first:
        logging.getLogger("mauth_client").warning(
            "MAUTH_URL %s is plain http outside loopback (MAUTH_ALLOW_INSECURE_URL=true): "
            "public keys and verdicts can be replaced in transit",
            shown,
        )


_HINTS = {
    "app_uuid": "APP_UUID (or MAUTH_APP_UUID)",
    "private_key": "MAUTH_PRIVATE_KEY (or PRIVATE_KEY, or MAUTH_PRIVATE_KEY_FILE)",
    "mauth_url": "MAUTH_URL",
}


def require_settings(values: Mapping[str, object]) -> None:
    """Raise a :class:`ConfigurationError` naming what to set for each empty value of
    ``values`` (keyed by :class:`Config` field name)."""
    missing = [_HINTS.get(name, name) for name, value in values.items() if not value]
    if missing:
        raise ConfigurationError("MAuth is not configured: set " + " and ".join(missing))


def require_configured(config: Config | None, who: str, *, upstream_words: bool = False) -> Config:
    """Fail where an adapter is built, not on its first request: ``config`` (or the
    environment) must name this app, its private key and the MAuth service.

    Only presence is checked here; a KMS-encrypted key is decrypted when first used.
    Raises :class:`MissingConfigurationError` naming what to set; with
    ``upstream_words`` (the middlewares upstream had) in the words upstream used, which
    its users' suites compare for equality.
    """
    if config is None:
        config = Config.from_env(resolve_private_key=False)
    keyless = not (config.app_uuid and config.private_key)
    api_unset = (
        "MAUTH_API_VERSION" in Config.__dict__ and Config.__dict__["MAUTH_API_VERSION"] is None
    )
    serviceless = not config.mauth_url or api_unset
    if upstream_words:
        groups = ["APP_UUID and PRIVATE_KEY"] if keyless else []
        groups += ["MAUTH_URL and MAUTH_API_VERSION"] if serviceless else []
        if groups:
            raise MissingConfigurationError(f"{who} requires " + ", and ".join(groups))
        return config
    missing = [
        _HINTS[name]
        for name in ("app_uuid", "private_key", "mauth_url")
        if not getattr(config, name)
    ]
    if api_unset:
        missing.append("MAUTH_API_VERSION")  # unset on the class, as upstream's suites do
    if missing:
        raise MissingConfigurationError(
            f"{who} cannot authenticate requests: MAuth is not configured: set "
            + " and ".join(missing)
            + " (or pass config= or a pre-built authenticator=)"
        )
    return config


def _first(env: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    """The first of ``names`` set to a non-blank value, and that value."""
    for name in names:
        value = env.get(name)
        if value is not None and value.strip():
            return name, value
    return None, None


def _flag(env: Mapping[str, str], *names: str, default: bool = False) -> bool:
    name, value = _first(env, *names)
    if name is None or value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value.strip()!r}")


def decrypt_kms_private_key(ciphertext_base64: str) -> str:
    """Decrypt a KMS-encrypted, base64-encoded private key with boto3 (the ``aws`` extra)."""
    try:
        import boto3
    except ImportError:
        raise ConfigurationError(
            "the private key has no PEM marker, so it is taken to be KMS-encrypted; "
            "decrypting it needs boto3: pip install 'mauth-client[aws]'"
        ) from None
    try:
        blob = base64.b64decode("".join(ciphertext_base64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            "the private key is neither PEM nor base64 (KMS-encrypted); check "
            "MAUTH_PRIVATE_KEY / PRIVATE_KEY"
        ) from None
    try:
        plaintext = boto3.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"]
    except Exception as exc:  # botocore's errors, missing region or credentials
        raise ConfigurationError(
            f"decrypting the KMS-encrypted private key failed: {type(exc).__name__}"
        ) from None
    text: str = plaintext.decode("utf-8") if isinstance(plaintext, bytes) else str(plaintext)
    return text


# --- upstream's class attributes (Config.APP_UUID = ...) ----------------------------------

# What each upstream class attribute may be set to; anything else is a ConfigurationError
# naming the attribute when a config is next built.
_CLASS_ATTRIBUTE_TYPES: dict[str, tuple[type, ...]] = {
    "APP_UUID": (str,),
    "MAUTH_URL": (str,),
    "MAUTH_API_VERSION": (str,),
    "MAUTH_MODE": (str,),
    "PRIVATE_KEY": (str, bytes),
    "V2_ONLY_AUTHENTICATE": (bool, str),
    "SIGN_VERSIONS": (str, list, tuple),
    "DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE": (bool, str),
}
# Fields that may be None; for the others, None means "the default".
_OPTIONAL_FIELDS = {"app_uuid", "mauth_url", "private_key"}
_generation = 0  # bumped whenever an upstream class attribute is assigned or deleted


class _UpstreamNames(type):
    """Upstream's class attributes on :class:`Config`.

    Read (``Config.APP_UUID``): the environment at the moment of reading, unless a
    value was assigned on the class. Assigned (``Config.APP_UUID = "..."``, as upstream's
    users and test suites do): honoured by every config built afterwards from the
    environment (:meth:`Config.from_env`, hence every default the library builds).
    """

    def __getattr__(cls, name: str) -> Any:
        if name in _UPSTREAM_NAMES:
            return getattr(Config.from_env(resolve_private_key=False), _UPSTREAM_NAMES[name])
        raise AttributeError(name)

    def __setattr__(cls, name: str, value: Any) -> None:
        global _generation
        super().__setattr__(name, value)
        if name in _UPSTREAM_NAMES:
            _generation += 1

    def __delattr__(cls, name: str) -> None:
        global _generation
        super().__delattr__(name)
        if name in _UPSTREAM_NAMES:
            _generation += 1


def class_attribute_overrides() -> dict[str, Any]:
    """The upstream attributes assigned on :class:`Config`, as field values.

    Raises :class:`ConfigurationError` naming an attribute set to a value of the wrong type.
    """
    values: dict[str, Any] = {}
    assigned = Config.__dict__
    for name, field_name in _UPSTREAM_NAMES.items():
        if name not in assigned:
            continue
        value = assigned[name]
        if value is None:
            if field_name in _OPTIONAL_FIELDS:
                values[field_name] = None
            continue
        allowed = _CLASS_ATTRIBUTE_TYPES[name]
        if not isinstance(value, allowed):
            kinds = " or ".join(kind.__name__ for kind in allowed)
            raise ConfigurationError(
                f"Config.{name} must be {kinds} (or None), not {type(value).__name__}"
            )
        if isinstance(value, str) and field_name != "private_key":
            value = value.strip()
            if field_name in ("mauth_mode",):
                value = value.lower()
        if field_name in ("v2_only_authenticate", "disable_fallback_to_v1_on_v2_failure"):
            if isinstance(value, str):
                value = _flag({f"Config.{name}": value}, f"Config.{name}")
        elif field_name == "sign_versions" and not isinstance(value, str):
            if not all(isinstance(item, str) for item in value):
                raise ConfigurationError(f"Config.{name} must list versions as text")
            value = ",".join(value)
        values[field_name] = value
    return values


def environment_fingerprint() -> tuple[object, ...]:
    """What every config built from the environment depends on: the MAuth environment
    variables and the upstream class attributes. Cheap enough to compare on every
    call, so process-wide defaults are rebuilt exactly when it changes."""
    environ = os.environ
    if environ is _ENVIRON and _ENV_DATA is not None:
        return (_generation, *map(_ENV_DATA.get, _ENV_KEYS))
    return (_generation, *map(environ.get, ENV_NAMES))


_ENVIRON = os.environ
# os.environ's own store (bytes keys on POSIX): read directly, a dict lookup per name,
# rather than through the mapping's encode/decode round trip on every call.
_ENV_DATA: dict[Any, Any] | None = getattr(os.environ, "_data", None)
try:
    _ENV_KEYS = tuple(os.environ.encodekey(name) for name in ENV_NAMES)
except AttributeError:  # pragma: no cover - an unusual os.environ
    _ENV_DATA = None
    _ENV_KEYS = ()


@dataclass(frozen=True)
class Config(metaclass=_UpstreamNames):
    """Everything mauth-client needs; immutable once built.

    ``private_key`` is the PEM text (a KMS-encrypted value is decrypted when the
    config is built from the environment). Timeouts are in seconds.
    """

    app_uuid: str | None = None
    private_key: str | bytes | None = field(default=None, repr=False)
    mauth_url: str | None = None
    mauth_api_version: str = "v1"
    mauth_mode: str = "local"
    sign_versions: str = "v1"
    v2_only_authenticate: bool = False
    disable_fallback_to_v1_on_v2_failure: bool = False
    time_window: int = 300
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2
    retry_backoff: float = 0.1
    key_cache_size: int = 1024
    default_key_ttl: int = 300
    max_key_ttl: int = 86400
    negative_cache_ttl: int = 60
    # --- replay protection and key caching (issue 12, issue 10 item 8) ---
    # "memory", a redis:// or rediss:// URL, or a mauth_client.replay.ReplayCache; None: off.
    replay_cache: Any = None
    # Protected methods ("POST,PUT" or a collection); None: all but GET, HEAD, OPTIONS.
    replay_methods: Any = None
    replay_fail_open: bool = False
    # A signature that fails with a key cached longer than this refetches the key once.
    min_key_refetch_interval: float = 30.0
    # An expired key is still used for this long while the MAuth service fails.
    max_stale: float = 3600.0
    # After a failed key lookup, fail fast (no call to the service) for this long.
    lookup_failure_cooldown: float = 5.0
    # --- The MAuth service client (net) ---
    # http:// service URLs are refused outside loopback unless this is set (a WARNING is
    # logged once per URL when it is): keys fetched in clear text can be swapped in transit.
    allow_insecure_url: bool = False
    # Seconds one call to the service may take in all (connect, retries, redirects and a
    # slowly dripped answer included), on top of the per-read timeouts.
    lookup_deadline: float = 15.0
    # --- request guard (issue 10): refuse larger bodies with 413 (None: unlimited) ---
    max_body_size: int | None = None
    # --- authorization and observability (issue 13) ---
    #: ``{app_uuid: [permission, ...]}``, the path of a JSON or TOML file holding it,
    #: or a callable ``app_uuid -> iterable of permissions`` (MAUTH_PERMISSIONS_FILE).
    #: Not compared: a mapping would make the frozen Config unhashable.
    permissions: PermissionsSpec | None = field(default=None, compare=False)
    #: False: every 401 body says only "authentication failed" and every 403 only
    #: "forbidden"; the log keeps the reason (MAUTH_ERROR_DETAIL).
    error_detail: bool = True
    #: The level of the per-failure log line, a name or a number (MAUTH_FAILURE_LOG_LEVEL).
    failure_log_level: int | str = logging.WARNING

    def __post_init__(self) -> None:
        if self.mauth_mode not in ("local", "remote"):
            raise ConfigurationError(
                f"MAUTH_MODE must be 'local' or 'remote', not {self.mauth_mode!r}"
            )
        if not _API_VERSION.fullmatch(self.mauth_api_version or ""):
            raise ConfigurationError(
                f"MAUTH_API_VERSION must look like 'v1', not {self.mauth_api_version!r}"
            )
        parse_sign_versions(self.sign_versions)
        for name in (
            "time_window",
            "connect_timeout",
            "read_timeout",
            "retries",
            "retry_backoff",
            "key_cache_size",
            "default_key_ttl",
            "max_key_ttl",
            "negative_cache_ttl",
            "min_key_refetch_interval",
            "max_stale",
            "lookup_failure_cooldown",
            "lookup_deadline",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative number, not {value!r}")
        if self.max_body_size is not None and (
            isinstance(self.max_body_size, bool)
            or not isinstance(self.max_body_size, int)
            or self.max_body_size < 0
        ):
            raise ConfigurationError(
                f"max_body_size must be a non-negative whole number of bytes, "
                f"not {self.max_body_size!r}"
            )
        if self.mauth_url is not None and not re.match(r"https?://[^/?#]+", self.mauth_url):
            raise ConfigurationError(
                f"MAUTH_URL must be an http(s) URL such as https://mauth.example.com, "
                f"not {redact_url(self.mauth_url)!r}"
            )
        if self.lookup_deadline <= 0:
            raise ConfigurationError(
                f"lookup_deadline (MAUTH_LOOKUP_DEADLINE) must be more than 0 seconds, "
                f"not {self.lookup_deadline!r}"
            )
        if self.mauth_url is not None:
            check_service_url(self.mauth_url, allow_insecure=self.allow_insecure_url)
        self._check_authz_settings()
        self._check_replay_settings()

    def _check_authz_settings(self) -> None:
        """Load the permissions now (a bad file fails at start-up) and check the level."""
        object.__setattr__(self, "_permissions", load_permissions(self.permissions))
        if not isinstance(self.error_detail, bool):
            raise ConfigurationError(
                f"error_detail must be true or false, not {self.error_detail!r}"
            )
        failure_level_number(self.failure_log_level)

    @property
    def permission_grants(self) -> Permissions | None:
        """The loaded ``permissions`` (None when not configured)."""
        loaded: Permissions | None = self.__dict__.get("_permissions")
        return loaded

    @property
    def failure_level(self) -> int:
        """``failure_log_level`` as a :mod:`logging` level number."""
        return failure_level_number(self.failure_log_level)

    def _check_replay_settings(self) -> None:
        from .replay import check_replay_setting, parse_methods

        check_replay_setting(self.replay_cache)
        parse_methods(self.replay_methods)

    def __repr__(self) -> str:
        """Every setting but the private key, with credentials cut from the URL."""
        shown = []
        for item in fields(self):
            if item.name == "private_key":
                continue
            value = getattr(self, item.name)
            if item.name == "permissions" and value is not None:
                value = self.permission_grants  # a summary, not every app's grants
            if item.name == "mauth_url" or (item.name in _URL_FIELDS and isinstance(value, str)):
                value = redact_url(value)
            shown.append(f"{item.name}={value!r}")
        return f"Config({', '.join(shown)})"

    # Upstream's attribute names, read on an instance.
    def __getattr__(self, name: str) -> Any:
        if name in _UPSTREAM_NAMES:
            return object.__getattribute__(self, _UPSTREAM_NAMES[name])
        raise AttributeError(name)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        resolve_private_key: bool = True,
        **overrides: Any,
    ) -> Config:
        """Build a config from the environment (or ``env``); ``overrides`` win over it.

        Raises :class:`ConfigurationError` naming the variable that is malformed or
        contradicts another one.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        _, values["app_uuid"] = _first(env, "APP_UUID", "MAUTH_APP_UUID")
        _, values["mauth_url"] = _first(env, "MAUTH_URL")
        values["mauth_api_version"] = (_first(env, "MAUTH_API_VERSION")[1] or "v1").strip()
        values["mauth_mode"] = (_first(env, "MAUTH_MODE")[1] or "local").strip().lower()
        values["sign_versions"] = (_first(env, "MAUTH_SIGN_VERSIONS")[1] or "v1").strip()
        values["v2_only_authenticate"] = _flag(
            env, "V2_ONLY_AUTHENTICATE", "MAUTH_V2_ONLY_AUTHENTICATE"
        )
        values["disable_fallback_to_v1_on_v2_failure"] = _flag(
            env, "MAUTH_DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE"
        )
        _replay_from_env(env, values)
        values["allow_insecure_url"] = _flag(env, "MAUTH_ALLOW_INSECURE_URL")
        _, deadline = _first(env, "MAUTH_LOOKUP_DEADLINE")
        if deadline is not None:
            try:
                values["lookup_deadline"] = float(deadline)
            except ValueError:
                raise ConfigurationError(
                    f"MAUTH_LOOKUP_DEADLINE must be a number of seconds, not {deadline.strip()!r}"
                ) from None
        # request guard (issue 10)
        size_name, size = _first(env, "MAUTH_MAX_BODY_SIZE")
        if size is not None:
            if not size.strip().isdigit() or not size.strip().isascii():
                raise ConfigurationError(
                    f"{size_name} must be a whole number of bytes, not {size.strip()!r}"
                )
            values["max_body_size"] = int(size.strip())
        if values["app_uuid"] is not None:
            values["app_uuid"] = values["app_uuid"].strip()
        if values["mauth_url"] is not None:
            values["mauth_url"] = values["mauth_url"].strip()
        values.update(authz_settings_from_env(env))
        # Upstream's class attributes win over the environment, explicit overrides over both.
        assigned = class_attribute_overrides()
        if "private_key" not in overrides:
            if "private_key" in assigned:
                key = assigned["private_key"]
                values["private_key"] = (
                    resolve_private_key_value(key) if resolve_private_key else key
                )
            else:
                values["private_key"] = _private_key_from_env(env, resolve_private_key)
        assigned.pop("private_key", None)
        values.update(assigned)
        values.update(overrides)
        return cls(**values)

    def resolved(self) -> Config:
        """This config with a KMS-encrypted private key decrypted (itself if there is none).

        Lets an adapter check at start-up that a key is set, and decrypt it only when
        it is first needed."""
        key = resolve_private_key_value(self.private_key)
        return self if key is self.private_key else replace(self, private_key=key)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def require(self, *names: str) -> None:
        """Raise a :class:`ConfigurationError` naming the variable to set for each missing field."""
        require_settings({name: getattr(self, name) for name in names})
        if "app_uuid" in names:
            check_app_uuid(self.app_uuid)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# --- authorization and observability settings (issue 13) ---------------------------------


def failure_level_number(level: object) -> int:
    """A :mod:`logging` level from a name ("INFO", "debug") or a number."""
    if isinstance(level, int) and not isinstance(level, bool) and level >= 0:
        return level
    if isinstance(level, str):
        text = level.strip()
        if text.isdigit():
            return int(text)
        number = logging.getLevelName(text.upper())
        if isinstance(number, int):
            return number
    raise ConfigurationError(
        f"MAUTH_FAILURE_LOG_LEVEL must be a logging level such as WARNING, INFO or DEBUG, "
        f"not {level!r}"
    )


def authz_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The issue-13 fields of a :class:`Config` set in ``env`` (absent ones left out)."""
    values: dict[str, Any] = {}
    _, file_name = _first(env, "MAUTH_PERMISSIONS_FILE")
    if file_name is not None:
        values["permissions"] = file_name.strip()
    if _first(env, "MAUTH_ERROR_DETAIL")[0] is not None:
        values["error_detail"] = _flag(env, "MAUTH_ERROR_DETAIL", default=True)
    _, level = _first(env, "MAUTH_FAILURE_LOG_LEVEL")
    if level is not None:
        values["failure_log_level"] = level.strip()
    return values


def _replay_from_env(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """The replay-protection and key-cache settings of the environment (issue 12)."""
    _, cache = _first(env, "MAUTH_REPLAY_CACHE")
    values["replay_cache"] = cache.strip() if cache else None
    _, methods = _first(env, "MAUTH_REPLAY_METHODS")
    values["replay_methods"] = methods.strip() if methods else None
    values["replay_fail_open"] = _flag(env, "MAUTH_REPLAY_FAIL_OPEN")
    for name, field_name in (
        ("MAUTH_MIN_KEY_REFETCH_INTERVAL", "min_key_refetch_interval"),
        ("MAUTH_MAX_STALE", "max_stale"),
    ):
        _, raw = _first(env, name)
        if raw is None:
            continue
        try:
            values[field_name] = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, not {raw!r}") from None


def _private_key_from_env(env: Mapping[str, str], resolve: bool) -> str | None:
    value_name, value = _first(env, "MAUTH_PRIVATE_KEY", "PRIVATE_KEY")
    _, file_name = _first(env, "MAUTH_PRIVATE_KEY_FILE")
    if value is not None and file_name is not None:
        raise ConfigurationError(
            f"both {value_name} and MAUTH_PRIVATE_KEY_FILE are set; set only one of them"
        )
    if file_name is not None:
        path = Path(file_name.strip()).expanduser()
        try:
            value = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"MAUTH_PRIVATE_KEY_FILE names {str(path)!r}, which could not be read: "
                f"{type(exc).__name__}"
            ) from None
    if value is None or not resolve:
        return value
    return resolve_private_key_value(value)


@overload
def resolve_private_key_value(key: str) -> str: ...
@overload
def resolve_private_key_value(key: str | bytes | None) -> str | bytes | None: ...
def resolve_private_key_value(key: str | bytes | None) -> str | bytes | None:
    """A private key as PEM: PEM as it is; a bare base64 DER key (no markers) wrapped
    in them, never sent to KMS; anything else decrypted as a KMS ciphertext. The one
    rule for every way a key arrives (environment, class attribute, ``resolved()``)."""
    if key is None or looks_like_pem(key):
        return key
    text = key if isinstance(key, str) else key.decode("ascii", "replace")
    der = bare_der_private_key_pem(text)
    return der if der is not None else decrypt_kms_private_key(text)
