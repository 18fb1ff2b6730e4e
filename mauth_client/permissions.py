"""Authorization: what an authentic caller may do (who it is, authentication says).

Two halves, both framework-free:

- **Grants**, :class:`Permissions`: app UUID -> the permissions it holds, from a
  mapping ``{app_uuid: [permission, ...]}``, a JSON or TOML file holding one, or a
  callable ``app_uuid -> iterable of permissions`` (an authorization service, a
  database). Mappings and files are checked when loaded, so a bad one fails at
  start-up with a :class:`~mauth_client.exceptions.ConfigurationError` naming the
  file and the line or key at fault.
- **Requirements**, :class:`Rules`: ``(method, path pattern, permission)`` triples
  such as ``("POST", "/studies/*", "studies:write")``; a request needs the
  permissions of every rule it matches, and nothing beyond authentication if it
  matches none.

This module imports nothing of the project but its exceptions, so the configuration
layer can check a permissions file when a :class:`~mauth_client.config.Config` is built.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Union
from urllib.parse import unquote

from .exceptions import ConfigurationError

#: What ``Config(permissions=...)`` accepts.
PermissionsSpec = Union[
    Mapping[str, Iterable[str]], str, "os.PathLike[str]", Callable[[str], Iterable[str]]
]
NO_PERMISSIONS: frozenset[str] = frozenset()


class PermissionLookupError(Exception):
    """A permissions callable failed or answered something that is not permissions."""


class Permissions:
    """The permissions each app holds. ``granted(app_uuid)`` is a frozenset (empty for
    an app not listed); with a callable it raises :class:`PermissionLookupError` when
    the callable raises or answers something other than an iterable of strings."""

    def __init__(
        self,
        grants: Mapping[str, Iterable[str]] | None = None,
        *,
        lookup: Callable[[str], Iterable[str]] | None = None,
        origin: str = "the permissions mapping",
    ) -> None:
        self.origin = origin
        self._lookup = lookup
        self._grants = _check_grants(grants or {}, origin) if lookup is None else {}

    @property
    def may_block(self) -> bool:
        """True for a callable (it may wait on a service or a database): async adapters
        then run the check in a worker thread rather than on the event loop."""
        return self._lookup is not None

    def granted(self, app_uuid: str) -> frozenset[str]:
        if self._lookup is None:
            return self._grants.get(app_uuid, NO_PERMISSIONS)
        try:
            answer = self._lookup(app_uuid)
        except Exception as exc:
            raise PermissionLookupError(
                f"the permissions callable raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(answer, (str, bytes, Mapping)) or not isinstance(answer, Iterable):
            kind = "a coroutine (it must be synchronous)" if _is_awaitable(answer) else None
            raise PermissionLookupError(
                "the permissions callable returned "
                f"{kind or type(answer).__name__}, not an iterable of permission strings"
            )
        granted = frozenset(answer)
        if not all(isinstance(item, str) for item in granted):
            raise PermissionLookupError(
                "the permissions callable returned something other than strings"
            )
        return granted

    def __repr__(self) -> str:
        if self._lookup is not None:
            return f"Permissions(lookup={self._lookup!r})"
        return f"Permissions({len(self._grants)} apps from {self.origin})"


def _is_awaitable(value: object) -> bool:
    close = getattr(value, "close", None)
    if hasattr(value, "__await__") and callable(close):
        close()  # a never-awaited coroutine would warn at garbage collection
        return True
    return False


def _check_grants(grants: object, origin: str) -> dict[str, frozenset[str]]:
    """``grants`` as ``{app_uuid: frozenset}``, or a ConfigurationError naming the bad key."""
    if not isinstance(grants, Mapping):
        raise ConfigurationError(
            f"{origin} must map app UUIDs to lists of permissions, not {type(grants).__name__}"
        )
    checked: dict[str, frozenset[str]] = {}
    for app_uuid, granted in grants.items():
        if not isinstance(app_uuid, str) or not app_uuid.strip():
            raise ConfigurationError(f"{origin}: the key {app_uuid!r} is not an app UUID")
        if isinstance(granted, (str, bytes, Mapping)) or not isinstance(granted, Iterable):
            raise ConfigurationError(
                f"{origin}: the value of {app_uuid!r} must be a list of permission strings, "
                f"not {type(granted).__name__}"
            )
        items = list(granted)
        for item in items:
            if not isinstance(item, str) or not item:
                raise ConfigurationError(
                    f"{origin}: {app_uuid!r} lists {item!r}, which is not a permission string"
                )
        checked[app_uuid.strip()] = frozenset(items)
    return checked


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigurationError(
                "reading a TOML permissions file on Python 3.10 needs tomli: pip install tomli"
            ) from None
    return tomllib.loads(text)


_loaded: dict[tuple[str, int, int], Permissions] = {}  # (path, mtime, size) -> contents


def load_permissions_file(path: str | os.PathLike[str]) -> Permissions:
    """Read a JSON or TOML (by the ``.toml`` suffix) file of ``{app_uuid: [permission]}``.

    Raises :class:`ConfigurationError` naming the file and the line (parse errors) or
    the key (a wrong shape) at fault. An unchanged file (same modification time and
    size) is parsed once, however many configurations name it.
    """
    file = Path(path).expanduser()
    name = str(file)
    try:
        stat = file.stat()
        cache_key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        cache_key = None
    if cache_key is not None and cache_key in _loaded:
        return _loaded[cache_key]
    loaded = _read_permissions_file(file, name)
    if cache_key is not None:
        if len(_loaded) >= 64:
            _loaded.clear()
        _loaded[cache_key] = loaded
    return loaded


def _read_permissions_file(file: Path, name: str) -> Permissions:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"the permissions file {name!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"the permissions file {name!r} could not be read: {type(exc).__name__}"
        ) from None
    if file.suffix.lower() == ".toml":
        try:
            document = _toml_loads(text)
        except ValueError as exc:  # tomllib.TOMLDecodeError says "(at line L, column C)"
            raise ConfigurationError(
                f"the permissions file {name!r} is not valid TOML: {exc}"
            ) from None
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"the permissions file {name!r} is not valid JSON: {exc.msg} at line "
                f"{exc.lineno}, column {exc.colno}"
            ) from None
    return Permissions(document, origin=f"the permissions file {name!r}")


def load_permissions(spec: PermissionsSpec | Permissions | None) -> Permissions | None:
    """A :class:`Permissions` from anything ``Config(permissions=...)`` accepts."""
    if spec is None or isinstance(spec, Permissions):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return load_permissions_file(spec)
    if isinstance(spec, Mapping):
        return Permissions(spec)
    if callable(spec):
        return Permissions(lookup=spec)
    raise ConfigurationError(
        "permissions must be a mapping of app UUIDs to lists of permissions, the path of a "
        f"JSON or TOML file holding one, or a callable; not {type(spec).__name__}"
    )


def required_permissions(permissions: object, where: str = "permissions") -> frozenset[str]:
    """A decorator's ``permissions={...}`` checked: a collection of non-empty strings
    (a single string would be read letter by letter, so it is refused)."""
    if permissions is None:
        return NO_PERMISSIONS
    if isinstance(permissions, (str, bytes)) or not isinstance(permissions, Iterable):
        raise ConfigurationError(
            f"{where} must be a collection of permission strings such as "
            f'{{"studies:write"}}, not {permissions!r}'
        )
    items = frozenset(permissions)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{where}: {item!r} is not a permission string")
    return items


# --- rules ------------------------------------------------------------------------------

_METHOD = re.compile(r"[A-Za-z]+")  # an HTTP token in practice: GET, POST, PURGE, ...
RuleLike = tuple[str, str, str]


class Rule(NamedTuple):
    """``method`` (upper-case, or ``*``), ``pattern`` (a path, or a prefix ending in ``*``)."""

    method: str
    pattern: str
    permission: str


def _check_rule(rule: object, index: int) -> Rule:
    where = f"rule {index}"
    if isinstance(rule, (str, bytes)) or not isinstance(rule, Iterable):
        raise ConfigurationError(f"{where} must be (method, path pattern, permission)")
    parts = tuple(rule)
    if len(parts) != 3 or not all(isinstance(part, str) for part in parts):
        raise ConfigurationError(
            f"{where} must be three strings (method, path pattern, permission), not {rule!r}"
        )
    method, pattern, permission = parts
    if method != "*" and not _METHOD.fullmatch(method):
        raise ConfigurationError(
            f"{where}: {method!r} is not an HTTP method (GET, POST, ...) or '*'"
        )
    if not pattern.startswith("/") or "*" in pattern[:-1] or "?" in pattern or "#" in pattern:
        raise ConfigurationError(
            f"{where}: the pattern {pattern!r} must be a path starting with '/', optionally "
            "ending in '*' for a prefix (no other '*', no query)"
        )
    if not permission.strip():
        raise ConfigurationError(f"{where}: the permission is empty")
    return Rule(method.upper(), pattern, permission)


def _candidate_paths(path: str) -> Collection[str]:
    """The path as sent, percent-decoded, and with dot segments and repeated slashes
    resolved: a rule on ``/admin/*`` must also hold for ``/%61dmin/x`` or
    ``/public/../admin/x``, however the framework behind routes them."""
    if "%" not in path and "//" not in path and "/." not in path:
        return (path,)  # the common case: nothing to decode or resolve
    decoded = unquote(path, errors="surrogateescape")
    paths = {path, decoded}
    for candidate in (path, decoded):
        normal = posixpath.normpath(re.sub("/{2,}", "/", candidate))
        if candidate.endswith("/") and not normal.endswith("/"):
            normal += "/"
        paths.add(normal if normal.startswith("/") else "/" + normal)
    return paths


class Rules:
    """Validated rules; :meth:`required` gives the permissions a request needs.

    A request needs the permission of every rule it matches (so two rules on one path
    both apply). A ``GET`` rule also covers ``HEAD`` (frameworks serve HEAD with the
    GET view); an exact pattern also matches the path with a trailing slash.
    """

    def __init__(self, rules: Iterable[RuleLike | Rule] = ()) -> None:
        if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
            raise ConfigurationError(
                "rules must be a list of (method, path pattern, permission) tuples"
            )
        self.rules = tuple(_check_rule(rule, index) for index, rule in enumerate(rules))
        # Per request method, the rules that apply to it: exact paths and prefixes.
        self._by_method: dict[str, tuple[dict[str, list[str]], list[tuple[str, str]]]] = {}
        # Answers for recent (method, path) pairs: a pure function of them, so a bounded
        # memo is safe (cleared when full, as paths are whatever clients send).
        self._memo: dict[tuple[str, str], frozenset[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __repr__(self) -> str:
        return f"Rules({list(self.rules)!r})"

    def _index(self, method: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
        methods = {"*", method, "GET"} if method == "HEAD" else {"*", method}
        exact: dict[str, list[str]] = {}
        prefixes: list[tuple[str, str]] = []
        for rule in self.rules:
            if rule.method not in methods:
                continue
            if rule.pattern.endswith("*"):
                prefixes.append((rule.pattern[:-1], rule.permission))
            else:
                bare = rule.pattern.rstrip("/") or "/"
                for key in {bare, bare if bare == "/" else bare + "/"}:
                    exact.setdefault(key, []).append(rule.permission)
        index = (exact, prefixes)
        if len(self._by_method) < 64:  # any token is a method: keep the cache bounded
            self._by_method[method] = index
        return index

    def required(self, method: str, path: str) -> frozenset[str]:
        """The permissions a ``method`` request to ``path`` (as sent, no query) needs."""
        if not self.rules:
            return NO_PERMISSIONS
        key = (method, path)
        answer = self._memo.get(key)
        if answer is None:
            answer = self._required(method, path)
            if len(path) <= 512:  # at most 4096 short paths: a bounded amount of memory
                if len(self._memo) >= 4096:
                    self._memo.clear()
                self._memo[key] = answer
        return answer

    def _required(self, method: str, path: str) -> frozenset[str]:
        method = method.upper()
        index = self._by_method.get(method) or self._index(method)
        exact, prefixes = index
        needed: set[str] | None = None
        candidates = _candidate_paths(path)
        for candidate in candidates:
            for permission in exact.get(candidate, ()):
                needed = needed or set()
                needed.add(permission)
            for prefix, permission in prefixes:
                if candidate.startswith(prefix):
                    needed = needed or set()
                    needed.add(permission)
        return NO_PERMISSIONS if needed is None else frozenset(needed)


def compile_rules(rules: Iterable[RuleLike | Rule] | Rules | None) -> Rules:
    """:class:`Rules` from what an adapter's ``rules=`` option accepts (None: no rules)."""
    if isinstance(rules, Rules):
        return rules
    return Rules(rules or ())
