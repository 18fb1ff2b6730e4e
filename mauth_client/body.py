"""Message bodies: in memory or streamed, hashed in one pass.

Both protocol versions can be computed from hashes of the body alone
(``mauth-protocol.md`` sections 2 and 3): V2 signs the SHA-512 of the body, and V1
signs the SHA-512 of a string in which the body sits between a prefix and a
suffix. So a streamed body is read once, in chunks, into two SHA-512 states; a
1 GiB file is never held in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol, TypeAlias, runtime_checkable

from .exceptions import BodyReadError


class BodyTooLargeError(BodyReadError):
    """The body grew past the adapter's ``max_body_size`` (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")
        self.limit = limit


CHUNK_SIZE = 1024 * 1024


@runtime_checkable
class Readable(Protocol):
    """Anything with a ``read(size)`` method: files, ``io.BytesIO``, sockets' files."""

    def read(self, size: int = ..., /) -> Any: ...


Body: TypeAlias = (
    str | bytes | bytearray | memoryview | IO[bytes] | Readable | Iterable[bytes] | None
)


def as_chunk(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        return _encode_text(chunk)
    raise BodyReadError(f"a streamed body yielded {type(chunk).__name__}; expected bytes (or str)")


def in_memory(body: Body) -> bytes | None:
    """The body as bytes when it is already in memory, else ``None`` (a stream)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return _encode_text(body)
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    return None


def _encode_text(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no bytes stand for it
        raise BodyReadError(
            "the body is text holding a lone surrogate, which has no UTF-8 encoding"
        ) from None


def iter_chunks(body: Body) -> Iterable[bytes]:
    """Yield a streamed body's chunks; a seekable file is rewound afterwards.

    Rewinding lets a client adapter hash a file and then send it. Any error the
    stream raises becomes :class:`~mauth_client.exceptions.BodyReadError`.
    """
    data = in_memory(body)
    if data is not None:
        yield data
        return
    if isinstance(body, Readable):
        yield from _iter_readable(body)
        return
    if isinstance(body, Iterable):
        try:
            for chunk in body:
                yield as_chunk(chunk)
        except BodyReadError:
            raise
        except Exception as exc:
            raise BodyReadError(f"reading the body failed: {type(exc).__name__}") from exc
        return
    raise BodyReadError(
        f"unsupported body type {type(body).__name__}; expected None, str, bytes, "
        "a binary file object or an iterable of bytes"
    )


def _iter_readable(stream: Readable) -> Iterable[bytes]:
    start: int | None = None
    try:
        if getattr(stream, "seekable", lambda: False)():
            start = stream.tell()  # type: ignore[attr-defined]
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if not chunk:
                break
            yield as_chunk(chunk)
        if start is not None:
            stream.seek(start)  # type: ignore[attr-defined]
    except BodyReadError:
        raise
    except Exception as exc:
        raise BodyReadError(f"reading the body failed: {type(exc).__name__}") from exc


def is_rereadable(body: Body) -> bool:
    """True when the body can be hashed again: in memory, or a seekable stream."""
    if in_memory(body) is not None:
        return True
    seekable = getattr(body, "seekable", None)
    try:
        return bool(seekable()) if callable(seekable) else False
    except Exception:
        return False


DEFAULT_SPOOL_THRESHOLD = 1024 * 1024  # bodies above this go to a temporary file


def spool_body(
    chunks: Iterable[bytes], threshold: int = DEFAULT_SPOOL_THRESHOLD
) -> bytes | IO[bytes]:
    """Collect a request body: bytes up to ``threshold``, past it a temporary file
    (rewound), so a large upload does not grow memory. Read errors raise
    :class:`BodyReadError`."""
    buffer = bytearray()
    spooled: IO[bytes] | None = None
    try:
        for chunk in chunks:
            if spooled is not None:
                spooled.write(chunk)
                continue
            buffer += chunk
            if len(buffer) > threshold:
                spooled = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
                spooled.write(buffer)
                buffer = bytearray()
    except BodyReadError:
        if spooled is not None:
            spooled.close()
        raise
    except Exception as exc:
        if spooled is not None:
            spooled.close()
        raise BodyReadError(f"reading the request body failed: {type(exc).__name__}") from exc
    if spooled is None:
        return bytes(buffer)
    spooled.seek(0)
    return spooled


def read_exactly(
    read: Callable[[int], Any], length: int | None, chunk: int = 65536
) -> Iterable[bytes]:
    """Chunks from a ``read(size)`` callable: ``length`` bytes, or until EOF when None."""
    remaining = length
    while remaining is None or remaining > 0:
        size = chunk if remaining is None else min(chunk, remaining)
        data = read(size)
        if not data:
            if remaining:
                raise BodyReadError(
                    f"the request body ended {remaining} bytes before its Content-Length"
                )
            return
        if remaining is not None:
            remaining -= len(data)
        yield data


def limit_size(chunks: Iterable[bytes], limit: int | None) -> Iterable[bytes]:
    """Pass ``chunks`` through, raising :class:`BodyTooLargeError` as soon as their
    total exceeds ``limit`` bytes (None: no limit), before the rest is read."""
    if limit is None:
        yield from chunks
        return
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise BodyTooLargeError(limit)
        yield chunk
