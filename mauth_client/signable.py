"""What gets signed: requests and responses, and their V1 and V2 strings to sign.

Implements ``mauth-protocol.md`` section 2: the two strings to sign, V2 path
normalisation and V2 query encoding. Bodies may be streams; they are hashed in one
pass (see :mod:`mauth_client.body`), so signing never needs the body in memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

from .body import Body, in_memory, is_rereadable, iter_chunks
from .exceptions import BodyReadError, InvalidMessageError

_ENCODING = "utf-8"
# Paths and queries may carry bytes that are not UTF-8 (as sent, or recovered from
# latin-1 WSGI strings); surrogateescape carries them through unchanged.
_ERRORS = "surrogateescape"

_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_LOWER_CASE_ESCAPE = re.compile(r"%(?:[a-f][0-9a-fA-F]|[0-9A-F][a-f])")
# A query made of these needs no decoding or re-encoding, only sorting (section 2).
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~=&]*")
# ... and of those, the ones where every "&"-part holds exactly one "=".
_PAIRED_PLAIN_QUERY = re.compile(
    r"[A-Za-z0-9\-._~]*=[A-Za-z0-9\-._~]*(?:&[A-Za-z0-9\-._~]*=[A-Za-z0-9\-._~]*)*"
)
_UNRESERVED = "~"  # quote() already keeps A-Z a-z 0-9 - . _


def _upper_escape(match: re.Match[str]) -> str:
    return match.group(0).upper()


def normalize_path(path: str) -> str:
    """Normalise a request path for V2 (``mauth-protocol.md`` section 2, "Path normalisation").

    In the document's order: resolve ``.`` and ``..`` first (RFC 3986 section 5.2.4,
    where an empty segment is a segment, so ``/a//../b`` is ``/a/b``, as the Ruby
    client signs it), then collapse runs of ``/``, upper-case percent escapes, keep a
    trailing ``/`` where the original had one (or ended in ``/.`` or ``/..``), and map
    the empty path to ``/``. Nothing else is decoded or encoded.
    """
    if not path:
        return "/"
    if path[0] == "/" and "//" not in path and "/." not in path and "%" not in path:
        return path  # fast path: already normal
    parts = path.split("/")
    if parts[0] == "":
        del parts[0]  # the root before the leading "/"
    # Step 1: dot segments, every other segment kept (empty ones too) as RFC 3986 does.
    segments: list[str] = []
    for segment in parts:
        if segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normal = "/" + "/".join(segments)
    if parts and parts[-1] in (".", "..") and normal != "/":
        normal += "/"  # step 4: "/." and "/.." end in a directory
    # Step 2: runs of "/" into one (this also drops the empty segments left above).
    while "//" in normal:
        normal = normal.replace("//", "/")
    if "%" in normal and _LOWER_CASE_ESCAPE.search(normal):
        normal = _PERCENT_ESCAPE.sub(_upper_escape, normal)  # step 3
    return normal


def _decode_form(text: str) -> str:
    return unquote_plus(text, encoding=_ENCODING, errors=_ERRORS)


def _encode_component(text: str) -> str:
    return quote(text, safe=_UNRESERVED, encoding=_ENCODING, errors=_ERRORS)


def encode_query(query: str) -> str:
    """Encode a raw query string for V2 (``mauth-protocol.md`` section 2, "Query encoding").

    Parts split on ``&`` and then on the first ``=``; keys and values are decoded
    as form data, sorted by code point (key, then value), and re-encoded with
    everything but ``A-Z a-z 0-9 - . _ ~`` percent-escaped in upper-case hex.
    Trailing empty parts are dropped, as the Ruby and JVM clients' ``split`` does.
    """
    if not query:
        return ""
    if _PAIRED_PLAIN_QUERY.fullmatch(query):
        # Every part is key=value of unreserved characters (so no empty trailing part
        # either): sort with C-level calls only.
        keyed = query.replace("=", "\x00").split("&")
        keyed.sort()
        return "&".join(keyed).replace("\x00", "=")
    parts = query.split("&")
    while parts and not parts[-1]:
        parts.pop()
    if _PLAIN_QUERY.fullmatch(query):
        plain = _sorted_plain_query(parts)
        if plain is not None:
            return plain
    try:
        return _encode_query_parts(parts)
    except UnicodeEncodeError:  # a lone surrogate (issue 10 item 9)
        raise InvalidMessageError(
            "the query string holds a lone surrogate, which is not text that can be sent"
        ) from None


def _encode_query_parts(parts: list[str]) -> str:
    """The general path of :func:`encode_query`: decode, sort, re-encode each pair."""
    decoded = []
    for part in parts:
        key, _, value = part.partition("=")
        decoded.append((_decode_form(key), _decode_form(value)))
    decoded.sort()
    return "&".join(
        f"{_encode_component(key)}={_encode_component(value)}" for key, value in decoded
    )


def _sorted_plain_query(parts: list[str]) -> str | None:
    """Fast path for queries of unreserved characters: nothing to decode or encode,
    only sorting (unless a value holds an "=", which must become %3D).

    Each part's "=" is swapped for NUL, which sorts below every unreserved character,
    so sorting the strings orders them exactly as sorting (key, value) pairs would.
    """
    keyed = []
    for part in parts:
        count = part.count("=")
        if count > 1:
            return None
        keyed.append(part.replace("=", "\x00") if count else part + "\x00")
    keyed.sort()
    return "&".join(keyed).replace("\x00", "=")


# Recently seen request targets and what is derived from them: their V2 forms, their
# section 4.6 variants. A service sees the same few paths and queries over and over
# (and a failed request's variants are tried for both versions), so each is worked out
# once. Bounded: cleared when full, and long targets are not kept.
_MEMO_SIZE = 1024
_MEMO_MAX_LENGTH = 1024
_V2_TARGETS: dict[tuple[str, str], tuple[str, str]] = {}
_VARIANT_TARGETS: dict[tuple[str, str, bool], tuple[tuple[str, str], ...]] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any, path: str, query: str) -> None:
    if len(path) + len(query) <= _MEMO_MAX_LENGTH:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = value


def v2_target(path: str, query: str) -> tuple[str, str]:
    """``(normalize_path(path), encode_query(query))``, remembered for recent targets."""
    key = (path, query)
    found = _V2_TARGETS.get(key)
    if found is None:
        found = (normalize_path(path), encode_query(query))
        _remember(_V2_TARGETS, key, found, path, query)
    return found


def variant_targets(path: str, query: str, with_query: bool = True) -> tuple[tuple[str, str], ...]:
    """The section 4.6 ``(path, query)`` forms of a request target, remembered for
    recent targets: re-encoded as form data, then with ``/`` and ``#`` (path) or ``=``
    and ``&`` (query) left bare. Forms equal to the target or to an earlier form are
    left out; ``with_query=False`` compares paths only (V1 does not sign the query)
    and keeps the query as received."""
    key = (path, query, with_query)
    found = _VARIANT_TARGETS.get(key)
    if found is None:
        seen = {(path, query if with_query else "")}
        forms = []
        for path_safe, query_safe in (("", ""), ("/#", "=&")):
            form = (
                form_encode(path, path_safe),
                form_encode(query, query_safe) if with_query else "",
            )
            if form not in seen:
                seen.add(form)
                forms.append(form if with_query else (form[0], query))
        found = tuple(forms)
        _remember(_VARIANT_TARGETS, key, found, path, query)
    return found


# quote_plus() leaves these characters alone, whatever its ``safe`` argument, and
# escapes only the four after them when they are not ``safe``.
_FORM_PLAIN = re.compile(r"[A-Za-z0-9_.~/=&#-]*")
_FORM_ESCAPES = (("/", "%2F"), ("=", "%3D"), ("&", "%26"), ("#", "%23"))


def form_encode(text: str, safe: str) -> str:
    """``quote_plus(text, safe=safe)`` as section 4.6 re-encodes (UTF-8, surrogateescape).

    Most targets hold only unreserved characters and ``/ = & #``: those are escaped
    with ``str.replace``, skipping urllib's per-character work."""
    if _FORM_PLAIN.fullmatch(text):
        for char, escape in _FORM_ESCAPES:
            if char in text and char not in safe:
                text = text.replace(char, escape)
        return text
    return quote_plus(text, safe=safe, encoding=_ENCODING, errors=_ERRORS)


def split_url(url: str) -> tuple[str, str]:
    """Split a URL (absolute, or origin-form ``/path?query``) into path and raw query.

    Scheme, host, port and fragment are dropped; an empty path is ``/``
    (section 2, step 5). Origin-form input is split by hand because ``urlsplit``
    would read a leading ``//`` as a host.
    """
    if not isinstance(url, str):
        raise InvalidMessageError(f"the URL must be str, not {type(url).__name__}")
    if url.startswith("/"):
        path, _, query = url.partition("#")[0].partition("?")
    else:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise InvalidMessageError(f"the URL could not be parsed: {exc}") from None
        path, query = parts.path, parts.query
    return path or "/", query


def _time_text(value: object) -> str:
    """Epoch seconds as decimal text; rejects anything that is not a plain integer."""
    if type(value) is str and value.isdigit() and value.isascii():
        return value
    if isinstance(value, bool):
        raise InvalidMessageError("the time must be an integer number of epoch seconds")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return value
    raise InvalidMessageError("the time must be an integer number of epoch seconds")


def _attribute(attributes: Mapping[str, Any] | None, name: str) -> Any:
    if not attributes or attributes.get(name) is None:
        raise InvalidMessageError(f"the string to sign needs '{name}' in its attributes")
    return attributes[name]


def _text(value: str | bytes) -> bytes:
    return value.encode(_ENCODING, _ERRORS) if isinstance(value, str) else value


class _BodyHashes:
    """SHA-512 states of one body, shared by a message and its re-encoded variants.

    The first pass over a stream yields the body digest (V2) and the V1 state for
    the message's own prefix together. Another prefix (a section 4.6 variant) needs
    the body again, which only an in-memory or seekable body can give.
    """

    __slots__ = ("_body", "_data", "_hexdigest", "_states")

    def __init__(self, body: Body) -> None:
        self._body = body
        if type(body) is bytes:  # the usual case, without a call
            self._data: bytes | None = body
        else:
            try:
                self._data = in_memory(body)
            except BodyReadError:  # text no bytes stand for: raised again when it is hashed,
                self._data = None  # so describing a message never fails, checking it does
        self._hexdigest: str | None = None
        self._states: dict[bytes, Any] = {}

    def _pass(self, prefix: bytes) -> None:
        v1 = hashlib.sha512(prefix)
        v2 = hashlib.sha512() if self._hexdigest is None else None
        for chunk in iter_chunks(self._body):
            v1.update(chunk)
            if v2 is not None:
                v2.update(chunk)
        self._states[prefix] = v1
        if v2 is not None:
            self._hexdigest = v2.hexdigest()

    def hexdigest(self, prefix: Callable[[], bytes]) -> str:
        """The body digest; ``prefix`` is only called when a stream must be read."""
        if self._hexdigest is None:
            if self._data is not None:
                self._hexdigest = hashlib.sha512(self._data).hexdigest()
            else:
                self._pass(prefix())
        assert self._hexdigest is not None
        return self._hexdigest

    def v1_hexdigest(self, prefix: bytes, suffix: bytes) -> bytes | None:
        """Hex SHA-512 of ``prefix + body + suffix``; None if the body cannot be read again."""
        if self._data is not None:
            fresh = hashlib.sha512(prefix)
            fresh.update(self._data)  # no copy of the body into a concatenated string
            fresh.update(suffix)
            return fresh.hexdigest().encode("ascii")
        state = self._states.get(prefix)
        if state is None:
            if self._states and not is_rereadable(self._body):
                return None
            self._pass(prefix)
            state = self._states[prefix]
        final = state.copy()
        final.update(suffix)
        return final.hexdigest().encode("ascii")  # type: ignore[no-any-return]

    def materialize(self) -> bytes:
        """The whole body in memory (only for the compatibility string-to-sign methods)."""
        if self._data is None:
            if self._states and not is_rereadable(self._body):
                raise InvalidMessageError(
                    "the streamed body was already consumed; pass bytes to build "
                    "a V1 string to sign, or use the signer, which streams"
                )
            self._data = b"".join(iter_chunks(self._body))
        return self._data


class Signable:
    """Base of :class:`RequestSignable` and :class:`ResponseSignable`."""

    __slots__ = ("_hashes",)

    def __init__(self, body: Body = None) -> None:
        self._hashes = _BodyHashes(body)

    # Subclasses say what precedes the body in V1 and what the V2 string holds.
    def _v1_prefix(self) -> bytes:
        raise NotImplementedError

    def _v2_string(self, app_uuid: str, time: str) -> str:
        raise NotImplementedError

    def body_hexdigest(self) -> str:
        """Lower-case hex SHA-512 of the body (the V2 body line)."""
        return self._hashes.hexdigest(self._v1_prefix)

    def v1_hexdigest(self, app_uuid: str, time: object) -> bytes | None:
        """Hex SHA-512 of the V1 string to sign, computed without holding the body in memory.

        ``None`` only for a variant whose stream body cannot be read again.
        """
        if not (type(time) is str and time.isdigit() and time.isascii()):  # usual: inline
            time = _time_text(time)
        suffix = f"\n{app_uuid}\n{time}".encode(_ENCODING, _ERRORS)
        return self._hashes.v1_hexdigest(self._v1_prefix(), suffix)

    def v2_string(self, app_uuid: str, time: object) -> bytes:
        """The V2 string to sign as bytes."""
        if not (type(time) is str and time.isdigit() and time.isascii()):  # usual: inline
            time = _time_text(time)
        return self._v2_string(app_uuid, time).encode(_ENCODING, _ERRORS)

    def string_to_sign_v1(self, override_attributes: Mapping[str, Any]) -> bytes:
        """The V1 string to sign (upstream API); ``app_uuid`` and ``time`` come from the mapping.

        It embeds the raw body, so a streamed body is read into memory here; the
        signer does not call this and streams instead.
        """
        app_uuid = _attribute(override_attributes, "app_uuid")
        time = _time_text(_attribute(override_attributes, "time"))
        return b"".join(
            (
                self._v1_prefix(),
                self._hashes.materialize(),
                b"\n",
                _text(app_uuid),
                b"\n",
                time.encode("ascii"),
            )
        )

    def string_to_sign_v2(self, override_attributes: Mapping[str, Any]) -> bytes:
        """The V2 string to sign (upstream API); ``app_uuid`` and ``time`` come from the mapping."""
        return self.v2_string(
            _attribute(override_attributes, "app_uuid"), _attribute(override_attributes, "time")
        )

    def variants(self, *, query: bool = True) -> Iterator[Signable]:
        """Re-encoded forms of this message to try when the signature does not match.

        ``query=False`` leaves out forms that differ only in their query string (which
        V1 does not sign)."""
        return iter(())


def _check_encodable(text: str, what: str) -> None:
    """Lone surrogates other than surrogateescape's cannot be encoded (issue 10 item 9)."""
    try:
        text.encode(_ENCODING, _ERRORS)
    except UnicodeEncodeError:
        raise InvalidMessageError(
            f"the {what} holds a lone surrogate, which is not text that can be sent"
        ) from None


class RequestSignable(Signable):
    """A request to sign or authenticate.

    Give either ``url`` (absolute, or ``/path?query``) or ``path`` and
    ``query_string`` as sent. ``body`` may be None, str (UTF-8), bytes, a binary
    file object or an iterable of bytes.
    """

    __slots__ = ("method", "path", "query_string")

    def __init__(
        self,
        method: str = "",
        url: str | None = None,
        body: Body = None,
        *,
        path: str | None = None,
        query_string: str | None = None,
        **_ignored: Any,
    ) -> None:
        self._hashes = _BodyHashes(body)
        if not isinstance(method, str):
            raise InvalidMessageError(f"the method must be str, not {type(method).__name__}")
        self.method = method
        if path is None:
            path, query = split_url(url if url is not None else "/")
        else:
            if not isinstance(path, str):
                raise InvalidMessageError(f"the path must be str, not {type(path).__name__}")
            query = query_string or ""
            if not isinstance(query, str):
                raise InvalidMessageError(
                    f"the query string must be str, not {type(query).__name__}"
                )
        self.path = path or "/"
        self.query_string = query

    @classmethod
    def received(cls, method: str, path: str, query: str, body: Body) -> RequestSignable:
        """A request as a server adapter received it: ``path`` and ``query`` as sent.

        The same as ``RequestSignable(method, path=path, query_string=query, body=body)``,
        without keyword parsing for the usual str values (every request pays it)."""
        if type(method) is not str or type(path) is not str or type(query) is not str:
            return cls(method, None, body, path=path, query_string=query)  # it says why
        self = cls.__new__(cls)
        self._hashes = _BodyHashes(body)
        self.method, self.path, self.query_string = method, path or "/", query
        return self

    def check(self) -> None:
        """Raise :class:`InvalidMessageError` if this request cannot be signed as given."""
        if not _METHOD.fullmatch(self.method):
            raise InvalidMessageError(
                "the HTTP method must be a non-empty token such as GET or POST"
            )
        if _CONTROL.search(self.path) or _CONTROL.search(self.query_string):
            raise InvalidMessageError("the URL contains control characters; percent-encode them")
        _check_encodable(self.path, "path")
        _check_encodable(self.query_string, "query string")

    def _v1_prefix(self) -> bytes:
        # V1 signs the path as sent, not normalised (section 2).
        return f"{self.method}\n{self.path}\n".encode(_ENCODING, _ERRORS)

    def _v2_string(self, app_uuid: str, time: str) -> str:
        hashes = self._hashes
        body_hex = hashes._hexdigest or hashes.hexdigest(self._v1_prefix)
        path, query = v2_target(self.path, self.query_string)
        return f"{self.method}\n{path}\n{body_hex}\n{app_uuid}\n{time}\n{query}"

    def _variant(self, path: str, query: str) -> RequestSignable:
        clone = RequestSignable.__new__(RequestSignable)
        clone._hashes = self._hashes  # the same body: its digests are shared
        clone.method, clone.path, clone.query_string = self.method, path, query
        return clone

    def variants(self, *, query: bool = True) -> Iterator[Signable]:
        """The section 4.6 tolerance (see :func:`variant_targets`), as Ruby client does
        for servers that hand over decoded (nginx) or re-encoded targets; ``query=False``
        leaves out forms that differ only in their query (V1 does not sign it)."""
        for path, encoded in variant_targets(self.path, self.query_string, query):
            yield self._variant(path, encoded)


class ResponseSignable(Signable):
    """A response to sign or authenticate: its status code and body."""

    __slots__ = ("status_code",)

    def __init__(self, status_code: int | str = 200, body: Body = None, **_ignored: Any) -> None:
        super().__init__(body)
        status = str(status_code) if isinstance(status_code, int) else status_code
        if (
            isinstance(status_code, bool)
            or not isinstance(status, str)
            or not (status.isascii() and status.isdigit() and len(status) == 3)
        ):
            raise InvalidMessageError("the status code must be a three-digit integer")
        self.status_code = int(status)

    def _v1_prefix(self) -> bytes:
        return str(self.status_code).encode("ascii") + b"\n"

    def _v2_string(self, app_uuid: str, time: str) -> str:
        return "\n".join((str(self.status_code), self.body_hexdigest(), app_uuid, time))
