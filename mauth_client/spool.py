"""Collect a streamed body in bounded memory: bytes up to a threshold, past it a
temporary file. Fed chunk by chunk, so a signer can hash each chunk on the way in
(the client adapters hash while they spool) and an event loop can hand the file
writes to a worker thread."""

from __future__ import annotations

import tempfile
from typing import IO

import anyio

from .body import as_chunk

SEND_CHUNK = 1024 * 1024  # batches written from the event loop, and read back per send


class Spool:
    """Collects a body: bytes up to ``threshold``, past it a temporary file (as
    :func:`mauth_client.body.spool_body`, but fed chunk by chunk)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.buffer = bytearray()
        self.file: IO[bytes] | None = None

    def add(self, chunk: bytes) -> None:
        if self.file is not None:
            self.file.write(chunk)
            return
        self.buffer += chunk
        if len(self.buffer) > self.threshold:
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
            self.file.write(self.buffer)
            self.buffer = bytearray()

    def finish(self) -> bytes | IO[bytes]:
        if self.file is None:
            return bytes(self.buffer)
        return self.file

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()


class AsyncSpool(Spool):
    """A :class:`Spool` for the event loop: chunks are batched to about 1 MiB and each
    batch is written from a worker thread."""

    def __init__(self, threshold: int) -> None:
        super().__init__(threshold)
        self.pending = bytearray()

    async def aadd(self, chunk: bytes) -> None:
        self.pending += chunk
        if len(self.pending) >= SEND_CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        await anyio.to_thread.run_sync(self.add, data)

    async def afinish(self) -> bytes | IO[bytes]:
        if self.pending:
            await self._flush()
        return self.finish()


def as_bytes(chunk: object) -> bytes:
    """A body chunk as bytes (str as UTF-8); anything else, or text no bytes stand for,
    is a :class:`BodyReadError`: the one rule of :mod:`mauth_client.body`."""
    return as_chunk(chunk)
