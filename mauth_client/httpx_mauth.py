"""MAuth for ``httpx``, sync and async clients alike (one ``auth_flow``).

    httpx.Client(auth=MAuthHttpx(app_uuid, private_key_pem, "v1,v2"))

An in-memory body is signed as it is. A streamed body (a generator, an async
generator, a multipart upload) is never held in memory: it is hashed while it is
spooled (in memory up to 1 MiB, past that to a temporary file), then sent sized
from the spool. Response authentication reads the response body.

Redirects: an ``httpx.Auth`` runs once per ``send``; a client that follows redirects
copies the signed headers onto every hop itself, to any origin. Build the client with
:meth:`MAuthHttpx.client` / :meth:`MAuthHttpx.async_client` (or pass
``event_hooks=auth.event_hooks`` / ``auth.async_event_hooks``): the hook removes the
MAuth headers from a hop to another origin and signs a same-origin hop afresh.
Without it a followed redirect is logged as a WARNING (once per auth).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ._optional import missing_extra

try:
    import anyio
    import httpx
except ImportError as exc:  # the httpx extra is not installed
    raise missing_extra(__name__, "httpx", exc) from exc

from .authenticator import AuthResult
from .body import DEFAULT_SPOOL_THRESHOLD, iter_chunks
from .client import SigningClientAuth, same_origin, strip_mauth_headers
from .exceptions import BodyReadError
from .signable import RequestSignable
from .spool import SEND_CHUNK, AsyncSpool, Spool, as_bytes

logger = logging.getLogger("mauth_client")
_MARK = "mauth_signed"  # the request extension the redirect hook reads


@dataclass
class _Mark:
    """What the auth flow signed, carried along the redirect chain in ``request.extensions``
    (httpx hands the same dict to every hop)."""

    url: str
    request_id: int
    hooked: bool = False


class SpooledBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body spooled to a temporary file, sent from its start each time it is
    iterated (httpx re-sends the same stream on a 307/308 redirect). The file is
    closed by :meth:`close`, or when the stream is garbage-collected."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(SEND_CHUNK):
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await anyio.to_thread.run_sync(self.file.seek, 0)
        while chunk := await anyio.to_thread.run_sync(self.file.read, SEND_CHUNK):
            yield chunk

    def close(self) -> None:
        self.file.close()

    async def aclose(self) -> None:
        self.file.close()


def _tee(chunks: Iterable[bytes], spool: Spool) -> Iterator[bytes]:
    """Yield ``chunks``, writing each to ``spool`` on the way."""
    for chunk in chunks:
        spool.add(chunk)
        yield chunk


class MAuthHttpx(SigningClientAuth, httpx.Auth):
    """An ``httpx.Auth`` that signs each request with MAuth; arguments as
    :class:`~mauth_client.client.SigningClientAuth`. A good response's signer is in
    ``response.extensions["mauth_app_uuid"]``. Streamed bodies above
    ``spool_threshold`` bytes go to a temporary file while they are signed."""

    # The flows below read the body themselves, in bounded memory; httpx's own
    # ``requires_request_body`` would read a streamed body whole into memory.
    requires_request_body = False
    spool_threshold = DEFAULT_SPOOL_THRESHOLD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requires_response_body = self._checker is not None
        self._warned_unhooked = False

    # --- clients with the redirect hook -----------------------------------------------

    @property
    def event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """``httpx.Client(event_hooks=...)`` value with the redirect hook."""
        return {"request": [self.redirect_hook], "response": []}

    @property
    def async_event_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """``httpx.AsyncClient(event_hooks=...)`` value with the redirect hook."""
        return {"request": [self.async_redirect_hook], "response": []}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` using this auth, with the redirect hook added to any
        ``event_hooks`` given."""
        kwargs["event_hooks"] = _merged(kwargs.get("event_hooks"), self.event_hooks)
        return httpx.Client(auth=self, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """As :meth:`client`, for ``httpx.AsyncClient``."""
        kwargs["event_hooks"] = _merged(kwargs.get("event_hooks"), self.async_event_hooks)
        return httpx.AsyncClient(auth=self, **kwargs)

    def redirect_hook(self, request: httpx.Request) -> None:
        """A request event hook: strip or re-sign the MAuth headers of a redirect hop."""
        mark = self._hop(request)
        if mark is not None:
            strip_mauth_headers(request.headers)
            if same_origin(str(request.url), mark.url):
                self._sign_body(request)  # a spooled body is hashed from its file

    async def async_redirect_hook(self, request: httpx.Request) -> None:
        """As :meth:`redirect_hook`, for ``httpx.AsyncClient``."""
        mark = self._hop(request)
        if mark is not None:
            strip_mauth_headers(request.headers)
            if same_origin(str(request.url), mark.url):
                await self._asign_body(request)

    @staticmethod
    def _hop(request: httpx.Request) -> _Mark | None:
        """The mark of a signed chain when ``request`` is one of its redirect hops."""
        mark = request.extensions.get(_MARK)
        if not isinstance(mark, _Mark):
            return None
        mark.hooked = True
        return None if mark.request_id == id(request) else mark

    @staticmethod
    def _mark(request: httpx.Request) -> None:
        request.extensions[_MARK] = _Mark(str(request.url), id(request))

    def _check_hops(self, request: httpx.Request, response: httpx.Response) -> None:
        mark = request.extensions.get(_MARK)
        unhooked = isinstance(mark, _Mark) and not mark.hooked
        if response.history and unhooked and not self._warned_unhooked:
            self._warned_unhooked = True
            logger.warning(
                "httpx followed a redirect carrying the MAuth headers of the first "
                "request, to whatever origin it named: build the client with "
                "MAuthHttpx.client() or event_hooks=auth.event_hooks"
            )

    # -- request body -------------------------------------------------------------

    def _signable(self, request: httpx.Request, body: Any) -> RequestSignable:
        # raw_path is the path and query exactly as they go on the wire.
        target = request.url.raw_path.decode("ascii")
        return RequestSignable(method=request.method, url=target, body=body)

    def _make_headers(self, request: httpx.Request) -> dict[str, str]:
        """The MAuth headers for a request whose body is in memory."""
        return self.signer.signed_headers(self._signable(request, request.content))

    def _sign_body(self, request: httpx.Request) -> None:
        """Sign ``request``; a streamed body is hashed while it is spooled (one pass)."""
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):  # in memory (a redirect hop: not read yet)
            body: Any = request.read()
        elif isinstance(stream, SpooledBody):  # ours already: a redirect hop sends it again
            stream.file.seek(0)  # sending it left the file at its end
            body = stream.file
        else:
            if not isinstance(stream, httpx.SyncByteStream):
                raise TypeError(
                    "an async body (async generator) needs httpx.AsyncClient; "
                    "httpx.Client can only send a sync iterable"
                )
            # The signer pulls the chunks through _tee, computing the V1 and V2
            # hashes in that one pass, and _tee stores each chunk in the spool.
            spool = Spool(self.spool_threshold)
            try:
                chunks = _tee(iter_chunks(stream), spool)
                headers = self.signer.signed_headers(self._signable(request, chunks))
                self._use_spool(request, spool.finish())
            except BaseException:
                spool.discard()
                raise
            request.headers.update(headers)
            return
        request.headers.update(self.signer.signed_headers(self._signable(request, body)))

    async def _asign_body(self, request: httpx.Request) -> None:
        """As :meth:`_sign_body` for an async body: spooled by the event loop (the
        file writes in a worker thread, about 1 MiB each), then hashed from the spool
        in a worker thread, so the loop never hashes or writes a file. (Not one pass
        as in the sync flow: a thread pulling chunks from the loop could outlive a
        cancelled request; re-reading the just-written spool costs little.)"""
        stream = request.stream
        if isinstance(stream, SpooledBody):  # a redirect hop: hash the file off the loop
            await anyio.to_thread.run_sync(self._sign_body, request)
            return
        if isinstance(stream, httpx.ByteStream) or not isinstance(stream, httpx.AsyncByteStream):
            self._sign_body(request)
            return
        spool = AsyncSpool(self.spool_threshold)
        try:
            try:
                async for chunk in stream:
                    await spool.aadd(as_bytes(chunk))
            except (BodyReadError, anyio.get_cancelled_exc_class()):
                raise
            except Exception as exc:
                raise BodyReadError(f"reading the body failed: {type(exc).__name__}") from exc
            self._use_spool(request, await spool.afinish())
        except BaseException:
            spool.discard()  # nothing is left open when the upload fails or is cancelled
            raise
        request.headers.update(
            await anyio.to_thread.run_sync(
                self.signer.signed_headers,
                self._signable(request, _spooled_file_or_bytes(request)),
            )
        )

    @staticmethod
    def _use_spool(request: httpx.Request, spooled: bytes | IO[bytes]) -> None:
        """Send ``spooled`` as the request's body, sized (no chunked encoding)."""
        request.headers.pop("Transfer-Encoding", None)
        if isinstance(spooled, bytes):
            request.stream = httpx.ByteStream(spooled)
            request._content = spooled  # what Request.read() sets for in-memory bodies
            size = len(spooled)
        else:
            size = spooled.seek(0, 2)
            spooled.seek(0)
            request.stream = SpooledBody(spooled, size)
        request.headers["Content-Length"] = str(size)

    # -- flows ----------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._sign_body(request)
        self._mark(request)
        response = yield request
        self._check_hops(request, response)
        if self._checker is not None:
            self._record(
                response,
                self._checker.check(response.status_code, response.content, response.headers),
            )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """As :meth:`auth_flow`; the response check fetches a missing key on
        ``httpx.AsyncClient`` (:meth:`ResponseChecker.acheck`), so the event loop is
        never blocked and no thread is taken."""
        await self._asign_body(request)
        self._mark(request)
        response = yield request
        self._check_hops(request, response)
        if self._checker is not None:
            await response.aread()
            result = await self._checker.acheck(
                response.status_code, response.content, response.headers
            )
            self._record(response, result)

    @staticmethod
    def _record(response: httpx.Response, result: AuthResult) -> None:
        response.extensions["mauth_app_uuid"] = result.app_uuid
        response.extensions["mauth_protocol_version"] = result.protocol_version


def _merged(
    given: dict[str, list[Callable[..., Any]]] | None,
    ours: dict[str, list[Callable[..., Any]]],
) -> dict[str, list[Callable[..., Any]]]:
    merged = {name: list(hooks) for name, hooks in (given or {}).items()}
    for name, hooks in ours.items():
        merged.setdefault(name, []).extend(hooks)
    return merged


def _spooled_file_or_bytes(request: httpx.Request) -> Any:
    stream = request.stream
    return stream.file if isinstance(stream, SpooledBody) else request.content
