"""Recovering the request target (path and query) of a WSGI request as it was sent.

WSGI servers hand ``PATH_INFO`` over percent-decoded and as latin-1 text (PEP 3333).
The signature covers the path as sent, so the raw target is preferred when the
server provides it (``RAW_URI``: gunicorn, werkzeug and the local MAuth service;
``REQUEST_URI``: uWSGI, mod_wsgi); otherwise the bytes are recovered from latin-1
and re-encoded the way clients encode paths. The authenticator's section 4.6
variants cover servers that re-encode differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .signed import Signed

# What clients leave bare in a path: RFC 3986 pchar minus "%", plus "/".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def request_target(environ: Mapping[str, Any]) -> tuple[str, str]:
    """``(path, query)`` of a WSGI request, as sent by the client where possible."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if type(raw) is str and raw[:1] == "/":
        if "#" in raw:  # servers should not pass a fragment; drop one if they do
            raw = raw.partition("#")[0]
        path, _, query = raw.partition("?")
        return path, query
    script = environ.get("SCRIPT_NAME", "") or ""
    path_info = environ.get("PATH_INFO", "") or ""
    try:
        raw_path = (script + path_info).encode("latin-1")
    except UnicodeEncodeError:  # a server that did not follow PEP 3333
        raw_path = (script + path_info).encode("utf-8", "surrogateescape")
    return quote_path(raw_path), environ.get("QUERY_STRING", "") or ""


def quote_path(raw_path: bytes) -> str:
    """Percent-encode a decoded path's bytes the way clients encode paths."""
    return quote(raw_path, safe=_PATH_SAFE) or "/"


def has_raw_target(environ: Mapping[str, Any]) -> bool:
    """True when the server passed the request target as sent (``RAW_URI``/``REQUEST_URI``)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    return isinstance(raw, str) and raw.startswith("/")


def signed_from_environ(environ: Mapping[str, Any]) -> Signed:
    """The MAuth headers of a WSGI request, parsed (no intermediate header dict)."""
    get = environ.get
    return Signed(
        get("HTTP_X_MWS_AUTHENTICATION", ""),
        get("HTTP_X_MWS_TIME", ""),
        get("HTTP_MCC_AUTHENTICATION", ""),
        get("HTTP_MCC_TIME", ""),
    )
