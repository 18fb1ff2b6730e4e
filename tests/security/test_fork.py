"""Issue 10 item 1: no impersonation after fork.

A process fetches a key over a keep-alive connection, then forks workers (gunicorn
``--preload``, Celery prefork). Each worker must talk to the MAuth service over its own
connection, or workers read each other's answers and take one app for another.
Real ``os.fork()``, a real keep-alive server (werkzeug, HTTP/1.1) in the parent.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mauth_client.authenticator import Authenticator
from mauth_client.config import Config
from mauth_client.key_source import LocalKeySource
from mauth_client.keys import public_key_pem
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from ._servers import keep_alive_server

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

WORKERS = 6


class PortRecorder:
    """Wraps the local MAuth service's WSGI app, noting the client port of each lookup."""

    def __init__(self, service: LocalMAuthService, slow_app: str | None = None) -> None:
        self.service = service
        self.slow_app = slow_app
        self.ports: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        with self._lock:
            self.ports.setdefault(path, []).append(int(environ["REMOTE_PORT"]))
        if self.slow_app is not None and self.slow_app in path:
            time.sleep(1.5)
        return self.service(environ, start_response)

    def ports_for(self, app_uuid: str) -> list[int]:
        with self._lock:
            return [p for path, ports in self.ports.items() if app_uuid in path for p in ports]


@pytest.fixture
def world() -> Iterator[tuple[LocalMAuthService, AppIdentity, PortRecorder, str]]:
    service = LocalMAuthService()  # served below by a keep-alive server, not its own
    me = service.new_app()
    recorder = PortRecorder(service)
    with keep_alive_server(recorder) as url:
        yield service, me, recorder, url


def config_at(me: AppIdentity, url: str) -> Config:
    return Config(
        app_uuid=me.app_uuid, private_key=me.private_key, mauth_url=url, sign_versions="v2"
    )


def signed_by(identity: AppIdentity) -> tuple[RequestSignable, Signed]:
    body = f"from {identity.app_uuid}".encode()
    headers = Signer(identity.app_uuid, identity.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/work", body=body)
    )
    return RequestSignable(method="POST", url="/work", body=body), Signed.from_headers(headers)


def fork_child(work: Callable[[], dict[str, Any]]) -> tuple[int, int, int]:
    """Fork a child that waits for a go byte, runs ``work`` and writes its JSON result.

    Returns (pid, go_fd, result_fd). The child always leaves through ``os._exit``.
    """
    go_read, go_write = os.pipe()
    result_read, result_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            signal.alarm(20)  # a child that hangs dies instead of hanging the test
            os.close(go_write)
            os.close(result_read)
            os.read(go_read, 1)
            try:
                result = work()
            except BaseException as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(result_write, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(go_read)
    os.close(result_write)
    return pid, go_write, result_read


def collect(children: list[tuple[int, int, int]], timeout: float = 30) -> list[dict[str, Any]]:
    for _, go, _ in children:  # start them all at once: concurrent lookups
        os.write(go, b"g")
        os.close(go)
    results = []
    deadline = time.monotonic() + timeout
    for pid, _, fd in children:
        chunks = []
        while True:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        data = b"".join(chunks)
        results.append(json.loads(data) if data else {"error": f"child died ({status})"})
    return results


def test_forked_workers_each_get_their_own_apps_key(
    world: tuple[LocalMAuthService, AppIdentity, PortRecorder, str],
) -> None:
    service, me, recorder, url = world
    first = service.new_app()
    apps = [service.new_app() for _ in range(WORKERS)]
    source = LocalKeySource(config_at(me, url))
    authenticator = Authenticator(source)
    # The parent looks a key up: its keep-alive connection to the service stays pooled.
    assert authenticator.authenticate(*signed_by(first)).app_uuid == first.app_uuid
    parent_ports = set(recorder.ports_for(first.app_uuid))
    assert len(parent_ports) == 1

    def work_for(identity: AppIdentity) -> Callable[[], dict[str, Any]]:
        def work() -> dict[str, Any]:
            pools = source.client.session.get_adapter(url).poolmanager.pools
            fresh = len(pools) == 0  # nothing inherited from the parent
            result = authenticator.authenticate(*signed_by(identity))
            key = public_key_pem(source.get_public_key(identity.app_uuid))
            first_key = public_key_pem(source.get_public_key(first.app_uuid))  # cached
            return {
                "app_uuid": result.app_uuid,
                "key": key,
                "fresh_pool": fresh,
                "first_key": first_key,
            }

        return work

    children = [fork_child(work_for(identity)) for identity in apps]
    results = collect(children)

    for identity, result in zip(apps, results, strict=True):
        assert "error" not in result, result
        assert result["app_uuid"] == identity.app_uuid  # no cross-talk
        assert result["key"].strip() == identity.public_key.strip()
        assert result["fresh_pool"] is True
        assert result["first_key"].strip() == first.public_key.strip()
        # Each child's lookup came over a connection of its own, not the parent's.
        child_ports = set(recorder.ports_for(identity.app_uuid))
        assert child_ports and not child_ports & parent_ports
    all_child_ports = [p for identity in apps for p in recorder.ports_for(identity.app_uuid)]
    assert len(set(all_child_ports)) == len(all_child_ports)
    # The cached key survived the fork: nobody fetched it again.
    assert service.calls("security_tokens", first.app_uuid) == 1
    # And the parent's own pool still works.
    assert source.get_public_key(apps[0].app_uuid) is not None


def test_fetch_in_flight_at_fork_does_not_block_the_child() -> None:
    """A parent thread is mid-lookup when the fork happens; the child's lookup of the same
    app must not wait on a flight that exists only in the parent."""
    service = LocalMAuthService()
    me = service.new_app()
    slow = service.new_app()
    recorder = PortRecorder(service, slow_app=slow.app_uuid)
    with keep_alive_server(recorder) as url:
        source = LocalKeySource(config_at(me, url))
        fetcher = threading.Thread(target=source.get_public_key, args=(slow.app_uuid,))
        fetcher.start()
        deadline = time.monotonic() + 5
        while not source._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert source._in_flight  # the parent's lookup is in flight now

        def work() -> dict[str, Any]:
            started = time.monotonic()
            key = public_key_pem(source.get_public_key(slow.app_uuid))
            return {"key": key, "seconds": time.monotonic() - started}

        (result,) = collect([fork_child(work)])
        fetcher.join(10)
    assert "error" not in result, result
    assert result["key"].strip() == slow.public_key.strip()
    assert result["seconds"] < 10


def test_deadline_still_enforced_in_a_forked_child(
    world: tuple[LocalMAuthService, AppIdentity, PortRecorder, str],
) -> None:
    """The watchdog thread that cuts slow answers lives in the parent; a child gets its own."""
    service, me, _, url = world
    source = LocalKeySource(config_at(me, url))
    source.get_public_key(service.new_app().app_uuid)  # the parent's watchdog is running

    def drip(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "999")])
        for _ in range(999):
            time.sleep(0.1)
            yield b" "

    with keep_alive_server(drip) as slow_url:
        slow = LocalKeySource(
            Config(
                app_uuid=me.app_uuid,
                private_key=me.private_key,
                mauth_url=slow_url,
                read_timeout=1.0,
                lookup_deadline=1.0,
            )
        )

        def work() -> dict[str, Any]:
            started = time.monotonic()
            try:
                slow.get_public_key(me.app_uuid)
            except Exception as exc:
                return {"error_text": str(exc), "seconds": time.monotonic() - started}
            return {"seconds": time.monotonic() - started}

        (result,) = collect([fork_child(work)])
    assert "did not answer in full within 1.0 s" in result.get("error_text", ""), result
    assert result["seconds"] < 4
