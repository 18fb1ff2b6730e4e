"""The framework-free service protocol driven by the async transport
(:mod:`mauth_client.key_service_httpx`, httpx.AsyncClient), against real servers: the
same rules as the requests transport, written once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mauth_client.exceptions import UnableToAuthenticateError
from mauth_client.key_service import KeyServiceProtocol
from mauth_client.key_service_httpx import AsyncMAuthServiceClient
from mauth_client.keys import public_key_pem
from mauth_client.testing import AppIdentity, LocalMAuthService

from .security._servers import Recorder, keep_alive_server


async def lookup(protocol: KeyServiceProtocol, app_uuid: str) -> Any:
    """The library's httpx.AsyncClient transport (key_service_httpx), driven by run_async."""
    client = AsyncMAuthServiceClient(protocol.config)
    try:
        return await client.security_token(app_uuid)
    finally:
        await client.aclose()


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
