"""Reading the MAuth headers of a received message (``mauth-protocol.md`` sections 1 and 4).

Parsing never raises: a header that does not match its anchored pattern gives a
:class:`SignatureInfo` that is not ``usable``, so the authenticator can say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias

from .consts import (
    MCC_AUTH,
    MCC_TIME,
    MWS_TOKEN,
    MWSV2_TOKEN,
    X_MWS_AUTH,
    X_MWS_TIME,
)

HeadersLike: TypeAlias = Mapping[Any, Any] | Iterable[tuple[Any, Any]]

_WANTED = {
    X_MWS_AUTH.lower(): "x_mws_authentication",
    X_MWS_TIME.lower(): "x_mws_time",
    MCC_AUTH.lower(): "mcc_authentication",
    MCC_TIME.lower(): "mcc_time",
}
_EXACT: dict[object, str] = {}
for _lower, _name in _WANTED.items():
    _canonical = {
        "x_mws_authentication": X_MWS_AUTH,
        "x_mws_time": X_MWS_TIME,
        "mcc_authentication": MCC_AUTH,
        "mcc_time": MCC_TIME,
    }[_name]
    for _spelling in (_lower, _canonical, _lower.encode("ascii"), _canonical.encode("ascii")):
        _EXACT[_spelling] = _name
_LENGTHS = {len(name) for name in _WANTED}
# Longer authentication headers are not parsed at all (an 8192-bit RSA signature is
# 1,368 base64 characters): hostile megabyte headers cost one length check.
MAX_AUTH_HEADER_LENGTH = 4096


class SignatureInfo(NamedTuple):
    """One version's signature as read from the headers.

    ``usable`` is False when the authentication header does not match the
    protocol's pattern for that version; ``token`` and ``app_uuid`` are then a
    best-effort reading for messages, or None.
    """

    version: int
    token: str | None
    app_uuid: str | None
    signature: str | None
    time: str
    usable: bool


def _text(value: object) -> str:
    if type(value) is str:
        return value.strip() if value else value
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1").strip()
    return ""


_new_info = tuple.__new__


def _split_v1(value: str) -> tuple[str, str, str] | None:
    """``X_MWS_AUTH_PATTERN``'s groups in linear time, as its backtracking would give them.

    The pattern ``\\A([^ ]+) *([^:]+):([^:]+)\\Z`` backtracks quadratically on hostile
    input (``MWS`` + thousands of spaces + a letter). The signature is what follows
    the last ``:``; before it, the token is the first run of non-spaces and the app
    UUID what follows the spaces (a single space when nothing does); with no space at
    all, the greedy token leaves the app UUID its last character.
    """
    head, colon, signature = value.rpartition(":")
    if not colon or not signature:
        return None
    space = head.find(" ")
    if space == -1:
        if len(head) < 2 or head[-1] == ":":
            return None
        return head[:-1], head[-1], signature
    if space == 0:
        return None
    rest = head[space:].lstrip(" ")
    if not rest:
        return head[:space], " ", signature
    if ":" in rest:
        return None
    return head[:space], rest, signature


def _loose(value: str) -> tuple[str | None, str | None]:
    """Token and app UUID for error messages when the strict parse fails: what
    ``\\A([^ :]+) +([^:]+):`` would match, in linear time."""
    space, colon = value.find(" "), value.find(":")
    if space <= 0 or (0 <= colon < space):
        return None, None
    spaces = value[space:]
    rest = spaces.lstrip(" ")
    end = rest.find(":")
    if end == -1 or (end == 0 and len(spaces) - len(rest) < 2):  # " +" keeps one space
        return None, None
    return value[:space], (rest[:end] if end else " ")


def _parse(version: int, value: str, time: str) -> SignatureInfo | None:
    if not value:
        return None
    if len(value) > MAX_AUTH_HEADER_LENGTH:
        return SignatureInfo(version, None, None, None, time, False)
    if version == 2:
        # MWSV2_AUTH_PATTERN with string operations (the hot path): "MWSV2 ", then
        # exactly one ":" between two non-empty runs, then the final ";".
        if value.startswith("MWSV2 ") and value.endswith(";"):
            app_uuid, colon, signature = value[6:-1].partition(":")
            if colon and app_uuid and signature and ":" not in signature:
                # tuple.__new__ skips the NamedTuple's Python-level __new__.
                return _new_info(SignatureInfo, (2, MWSV2_TOKEN, app_uuid, signature, time, True))
    else:
        # The common "MWS <app>:<signature>" first; anything else (an odd token, a
        # blank app UUID) as X_MWS_AUTH_PATTERN would read it, in linear time.
        if value.startswith("MWS "):
            app_uuid, colon, signature = value[4:].lstrip(" ").partition(":")
            if colon and app_uuid and signature and ":" not in signature:
                return _new_info(SignatureInfo, (1, MWS_TOKEN, app_uuid, signature, time, True))
        groups = _split_v1(value)
        if groups is not None:
            token, app_uuid, signature = groups
            return _new_info(SignatureInfo, (1, token, app_uuid, signature, time, True))
    loose_token, loose_app = _loose(value)
    return SignatureInfo(version, loose_token, loose_app, None, time, False)


class Signed:
    """The MAuth headers of a message, parsed.

    ``token``, ``app_uuid`` and ``signature`` describe the signature the message
    is authenticated by: V2 when ``MCC-Authentication`` is non-blank, else V1
    (section 4, step 1). ``v1`` and ``v2`` hold each version's own reading.
    """

    __slots__ = (
        "_v1",
        "_v2",
        "mcc_authentication",
        "mcc_time",
        "x_mws_authentication",
        "x_mws_time",
    )

    def __init__(
        self,
        x_mws_authentication: Any = "",
        x_mws_time: Any = "",
        mcc_authentication: Any = "",
        mcc_time: Any = "",
    ) -> None:
        # str.strip() inline for the usual str values; _text copes with anything else.
        self.x_mws_authentication = (
            x_mws_authentication.strip()
            if type(x_mws_authentication) is str
            else _text(x_mws_authentication)
        )
        self.x_mws_time = x_mws_time.strip() if type(x_mws_time) is str else _text(x_mws_time)
        self.mcc_authentication = (
            mcc_authentication.strip()
            if type(mcc_authentication) is str
            else _text(mcc_authentication)
        )
        self.mcc_time = mcc_time.strip() if type(mcc_time) is str else _text(mcc_time)
        # Parsed on first use: most messages are checked with one version only.
        self._v1: SignatureInfo | bool | None = False
        self._v2: SignatureInfo | bool | None = False

    @property
    def v1(self) -> SignatureInfo | None:
        """The V1 signature, or None when ``X-MWS-Authentication`` is blank."""
        if self._v1 is False:
            self._v1 = _parse(1, self.x_mws_authentication, self.x_mws_time)
        return self._v1  # type: ignore[return-value]

    @property
    def v2(self) -> SignatureInfo | None:
        """The V2 signature, or None when ``MCC-Authentication`` is blank."""
        if self._v2 is False:
            self._v2 = _parse(2, self.mcc_authentication, self.mcc_time)
        return self._v2  # type: ignore[return-value]

    @classmethod
    def from_headers(cls, headers: HeadersLike | None) -> Signed:
        """Read the four MAuth headers, whatever their case, from a mapping or pairs.

        Keys and values may be str or bytes (ASGI); anything else is ignored.
        """
        found: dict[str, Any] = {}
        if type(headers) is dict:
            # Fast path: a dict holding nothing but canonical MAuth names (what signers
            # and the adapters' request_headers() produce) can hold no other spelling.
            get = headers.get
            x_auth, x_time = get(X_MWS_AUTH), get(X_MWS_TIME)
            m_auth, m_time = get(MCC_AUTH), get(MCC_TIME)
            present = (
                (x_auth is not None)
                + (x_time is not None)
                + (m_auth is not None)
                + (m_time is not None)
            )
            if present == len(headers):
                return cls(x_auth or "", x_time or "", m_auth or "", m_time or "")
        if headers:
            items: Iterable[tuple[Any, Any]]
            if type(headers) is dict or isinstance(headers, Mapping):
                items = headers.items()
            else:
                items = headers
            try:
                for key, value in items:
                    name = _EXACT.get(key)  # common spellings, without lower-casing every key
                    if name is None:
                        if isinstance(key, (bytes, bytearray)):
                            key = bytes(key).decode("latin-1")
                        if not isinstance(key, str) or len(key) not in _LENGTHS:
                            continue
                        name = _WANTED.get(key.lower())
                        if name is None:
                            continue
                    found[name] = value
            except (TypeError, ValueError):
                pass  # not pairs: treat what was read so far as the headers
        return cls(**found)

    @property
    def primary(self) -> SignatureInfo | None:
        """The signature the message is authenticated by (V2 wins when present)."""
        return self.v2 if self.mcc_authentication else self.v1

    # "" when absent or malformed, as upstream's fields were (not None); the best-effort
    # reading of a malformed header stays on ``v1``/``v2`` for error messages.
    @property
    def token(self) -> str:
        primary = self.primary
        return (primary.token or "") if primary and primary.usable else ""

    @property
    def app_uuid(self) -> str:
        primary = self.primary
        return (primary.app_uuid or "") if primary and primary.usable else ""

    @property
    def signature(self) -> str:
        primary = self.primary
        return (primary.signature or "") if primary and primary.usable else ""

    def protocol_version(self) -> int | None:
        """2, 1, or None when the message carries no MAuth signature."""
        primary = self.primary
        return primary.version if primary else None

    def __repr__(self) -> str:
        return f"Signed(protocol_version={self.protocol_version()}, app_uuid={self.app_uuid!r})"
