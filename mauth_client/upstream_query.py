"""Upstream 1.10.1's V2 query encoding, accepted as a known variant when verifying.

Upstream (``mauth-client`` 1.10.1, Python) encodes each decoded key and value with
``urllib.parse.quote``'s default ``safe="/"``, so a ``/`` stays bare where
``mauth-protocol.md`` section 2 ("Query encoding") escapes it as ``%2F``, and it
keeps trailing empty parts that the protocol drops. Requests it signed with a ``/``
in the query would otherwise fail V2 and, since a request with a query no longer
falls back to V1 (V1 does not cover the query), be refused. Written from the
protocol difference, not from upstream's code.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_plus


def upstream_encode_query(query: str) -> str | None:
    """The query as upstream 1.10.1 encodes it for V2, or None when it cannot be."""
    if not query:
        return ""
    try:
        pairs = []
        for part in query.split("&"):
            key, _, value = part.partition("=")
            pairs.append(
                (
                    unquote_plus(key, errors="surrogateescape"),
                    unquote_plus(value, errors="surrogateescape"),
                )
            )
        pairs.sort()
        return "&".join(
            f"{quote(key, safe='/', errors='surrogateescape')}="
            f"{quote(value, safe='/', errors='surrogateescape')}"
            for key, value in pairs
        )
    except (UnicodeError, ValueError):
        return None
