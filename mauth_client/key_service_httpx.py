"""The ``httpx.AsyncClient`` transport of the MAuth service protocol (:mod:`.key_service`).

:class:`AsyncMAuthServiceClient` is the async twin of
:class:`~mauth_client.key_service_requests.MAuthServiceClient`: the same signed
requests, and the same rules (whole-call deadline, bounded retries with backoff,
same-origin redirects only, 64 KiB answers), because both are driven by
:meth:`KeyServiceProtocol.call`. An event loop waiting on the service is never
blocked, and no worker thread is taken.

An ``httpx.AsyncClient`` belongs to the event loop it was first used on, so there
is one per running loop (an app served by one loop has one). The private key is
resolved (a KMS decryption, a blocking call) once, in a worker thread, on the
first call. After ``os.fork()`` the child drops the parent's clients: their pooled
sockets are shared with the parent.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING

from . import forksafe
from .config import Config
from .key_service import (
    AnswerTooLarge,
    KeyAnswer,
    KeyServiceProtocol,
    Send,
    ServiceAnswer,
    ServiceRequest,
    ServiceTimedOut,
    ServiceUnreachable,
    TransportFailure,
    run_async,
    ticket_verdict,
)
from .signable import RequestSignable
from .signed import SignatureInfo

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncMAuthServiceClient"]


class AsyncMAuthServiceClient:
    """Signed calls to the MAuth service over ``httpx.AsyncClient`` (needs the
    ``httpx`` extra), under :class:`~mauth_client.key_service.KeyServiceProtocol`'s rules."""

    def __init__(self, config: Config) -> None:
        config.require("mauth_url", "app_uuid", "private_key")  # presence, checked now
        self.config = config
        self._protocol: KeyServiceProtocol | None = None
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # The parent's pooled connections are shared with it: forget them unclosed.
        self._clients = weakref.WeakKeyDictionary()

    async def protocol(self) -> KeyServiceProtocol:
        """The request builder, its private key resolved (in a thread: KMS may be called)."""
        if self._protocol is None:
            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(
                None, lambda: KeyServiceProtocol(self.config.resolved())
            )
            if self._protocol is None:
                self._protocol = built
        return self._protocol

    def _client(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Redirects are the protocol's to decide; proxies from the environment, as
            # the requests transport honours them.
            client = self._clients[loop] = httpx.AsyncClient(follow_redirects=False)
        return client

    # --- calls ---------------------------------------------------------------------------

    async def call(self, request: ServiceRequest) -> ServiceAnswer:
        """Send a signed request under the protocol's rules; the final answer."""
        protocol = await self.protocol()
        return await run_async(protocol.call(request), self._send, asyncio.sleep)

    async def security_token(self, app_uuid: str) -> KeyAnswer:
        """The public key of ``app_uuid`` (None if unknown) and seconds to cache it."""
        protocol = await self.protocol()
        answer = await self.call(protocol.security_token_request(app_uuid))
        return protocol.security_token_answer(answer, app_uuid)

    async def check_ticket(self, signable: RequestSignable, info: SignatureInfo) -> None:
        """Remote mode: return when the service finds ``info`` signs ``signable``, else
        raise as :func:`~mauth_client.key_service.ticket_verdict` does."""
        protocol = await self.protocol()
        answer = await self.call(protocol.authentication_ticket(signable, info))
        ticket_verdict(answer.status, info)

    async def _send(self, step: Send) -> ServiceAnswer:
        """One request, no redirects, the answer read in full by the step's deadline."""
        import anyio
        import httpx

        request = step.request
        timeout = httpx.Timeout(step.read_timeout, connect=step.connect_timeout)
        remaining = step.deadline - time.monotonic()
        try:
            with anyio.fail_after(max(remaining, 0)):
                async with self._client().stream(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    content=request.body,
                    timeout=timeout,
                ) as response:
                    declared = response.headers.get("content-length", "")
                    if declared.strip().isdigit() and int(declared) > step.max_bytes:
                        raise AnswerTooLarge("Content-Length")
                    chunks: list[bytes] = []
                    total = 0
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if total > step.max_bytes:
                            raise AnswerTooLarge("body")
                        chunks.append(chunk)
        except TimeoutError:  # the step's deadline (anyio.fail_after)
            raise ServiceTimedOut("deadline", deadline=True) from None
        except httpx.TimeoutException as exc:
            raise ServiceTimedOut(type(exc).__name__) from None
        except httpx.TransportError as exc:  # connect errors, a connection cut mid-answer
            raise ServiceUnreachable(type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise TransportFailure(type(exc).__name__) from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        return ServiceAnswer(response.status_code, headers, b"".join(chunks))

    async def aclose(self) -> None:
        """Close the client of the running loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
