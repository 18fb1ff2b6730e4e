"""A fleet of app-server processes sharing one real Redis and one local MAuth service.

Each instance is a separate Python process (tests/fleet_app.py: the WSGI middleware
under werkzeug), configured from the environment with MAUTH_REPLAY_CACHE=redis://...
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mauth_client.signable import RequestSignable
from mauth_client.signer import Signer
from mauth_client.testing import LocalMAuthService
from mauth_client.testing.redis_server import LocalRedisServer, RedisUnavailable

REPO = Path(__file__).resolve().parents[1]
INSTANCES = 3


class Fleet:
    def __init__(self, service: LocalMAuthService, redis: LocalRedisServer) -> None:
        self.service = service
        self.redis = redis
        self.caller = service.new_app()
        me = service.new_app()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MAUTH_URL": service.url,
            "APP_UUID": me.app_uuid,
            "MAUTH_PRIVATE_KEY": me.private_key,
            "MAUTH_REPLAY_CACHE": redis.url,
        }
        self.processes = [
            subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "fleet_app.py")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(INSTANCES)
        ]
        self.urls = []
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("http://127.0.0.1:"), line
            self.urls.append(line)

    def signed(self, body: bytes, method: str = "POST") -> dict[str, str]:
        return Signer(self.caller.app_uuid, self.caller.private_key, "v1,v2").signed_headers(
            RequestSignable(method=method, url="/orders", body=body)
        )

    def send(self, index: int, headers: dict[str, str], body: bytes) -> requests.Response:
        return requests.post(f"{self.urls[index]}/orders", data=body, headers=headers, timeout=20)

    def close(self) -> str:
        errors = []
        for process in self.processes:
            process.terminate()
            _, err = process.communicate(timeout=20)
            errors.append(err)
        return "".join(errors)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    try:
        redis = LocalRedisServer()
    except RedisUnavailable as exc:
        pytest.skip(f"the fleet tests need a redis-server binary: {exc}")
    with redis, LocalMAuthService() as service:
        running = Fleet(service, redis)
        try:
            yield running
        finally:
            stderr = running.close()
            assert "Traceback" not in stderr, stderr


def test_accepted_by_one_rejected_by_the_others(fleet: Fleet) -> None:
    body = b'{"order": 1}'
    headers = fleet.signed(body)
    first = fleet.send(0, headers, body)
    assert first.status_code == 200, first.text
    for index in range(1, INSTANCES):
        again = fleet.send(index, headers, body)
        assert again.status_code == 401, again.text
        assert "replay" in again.json()["errors"]["mauth"][0]
    assert fleet.send(0, headers, body).status_code == 401


def test_twenty_copies_at_once_are_accepted_exactly_once(fleet: Fleet) -> None:
    body = b'{"order": 2}'
    headers = fleet.signed(body)
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        barrier.wait()
        status = fleet.send(n % INSTANCES, headers, body).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] + [401] * 19


def test_redis_outage_is_503_and_recovers(fleet: Fleet) -> None:
    fleet.redis.stop()
    try:
        for index in range(INSTANCES):
            body = b'{"order": 3, "to": %d}' % index
            answer = fleet.send(index, fleet.signed(body), body)
            assert answer.status_code == 503, answer.text
            assert answer.headers["Content-Type"] == "application/json"
            message: Any = answer.json()["errors"]["mauth"][0]
            assert "MAUTH_REPLAY_CACHE" in message
    finally:
        fleet.redis.start()
    for index in range(INSTANCES):
        body = b'{"order": 4, "to": %d}' % index
        headers = fleet.signed(body)
        assert fleet.send(index, headers, body).status_code == 200
        assert fleet.send((index + 1) % INSTANCES, headers, body).status_code == 401
