"""The framework-free service protocol driven by an async transport (httpx.AsyncClient),
against real servers: the same rules as the requests transport, written once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from mauth_client.exceptions import UnableToAuthenticateError
from mauth_client.key_service import (
    AnswerTooLarge,
    KeyServiceProtocol,
    Send,
    ServiceAnswer,
    ServiceTimedOut,
    ServiceUnreachable,
    run_async,
)
from mauth_client.keys import public_key_pem
from mauth_client.testing import AppIdentity, LocalMAuthService

from .security._servers import Recorder, keep_alive_server


def httpx_transport(client: httpx.AsyncClient) -> Callable[[Send], Any]:
    async def send(step: Send) -> ServiceAnswer:
        request = step.request
        timeout = httpx.Timeout(step.read_timeout, connect=step.connect_timeout)
        try:
            with anyio.fail_after(max(step.deadline - time.monotonic(), 0)):
                async with client.stream(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    content=request.body,
                    timeout=timeout,
                ) as response:
                    body = b""
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > step.max_bytes:
                            raise AnswerTooLarge("body")
        except TimeoutError:
            raise ServiceTimedOut("deadline", deadline=True) from None
        except httpx.TimeoutException as exc:
            raise ServiceTimedOut(type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise ServiceUnreachable(type(exc).__name__) from None
        headers = {k.lower(): v for k, v in response.headers.items()}
        return ServiceAnswer(response.status_code, headers, body)

    return send


async def lookup(protocol: KeyServiceProtocol, app_uuid: str) -> Any:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        answer = await run_async(
            protocol.call(protocol.security_token_request(app_uuid)),
            httpx_transport(client),
            asyncio.sleep,
        )
    return protocol.security_token_answer(answer, app_uuid)


def test_async_transport_fetches_a_key(service: LocalMAuthService, me: AppIdentity) -> None:
    caller = service.new_app()
    protocol = KeyServiceProtocol(service.config_for(me))
    key, ttl = asyncio.run(lookup(protocol, caller.app_uuid))
    assert key is not None and public_key_pem(key).strip() == caller.public_key.strip()
    assert ttl == 300  # the local service's max-age
    unknown = asyncio.run(lookup(protocol, "00000000-0000-0000-0000-000000000000"))
    assert unknown.key is None


def test_async_transport_follows_the_same_rules(me: AppIdentity) -> None:
    elsewhere = Recorder()
    with keep_alive_server(elsewhere) as other:

        def redirector(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            start_response(
                "307 Temporary Redirect", [("Location", other + "/k"), ("Content-Length", "0")]
            )
            return []

        with keep_alive_server(redirector) as url:
            protocol = KeyServiceProtocol(_config(me, url))
            with pytest.raises(UnableToAuthenticateError, match="redirected to another origin"):
                asyncio.run(lookup(protocol, "someone"))
    assert elsewhere.seen == []


def test_async_transport_retries_5xx(me: AppIdentity) -> None:
    with LocalMAuthService(fail_status=503) as service:
        protocol = KeyServiceProtocol(service.config_for(me, retry_backoff=0.01))
        with pytest.raises(UnableToAuthenticateError, match="answered 503"):
            asyncio.run(lookup(protocol, "someone"))
        assert service.calls() == 3


def _config(me: AppIdentity, url: str) -> Any:
    from mauth_client.config import Config

    return Config(app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url)
