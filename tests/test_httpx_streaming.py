"""MAuthHttpx with streamed bodies: hashed while spooled, sent sized, bounded memory.

The server is a real WSGI app on 127.0.0.1 behind the MAuth WSGI middleware, which
hashes what it receives and answers with the digest, so a test fails if the body
that was signed is not the body that was sent.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from werkzeug.wsgi import get_input_stream

from mauth_client.exceptions import BodyReadError
from mauth_client.httpx_mauth import MAuthHttpx, SpooledBody
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.testing import AppIdentity, LocalMAuthService

from .servers import werkzeug_server


def hashing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Hash the body as it arrives; report its size, digest and how it was framed."""
    digest, size = hashlib.sha256(), 0
    stream = get_input_stream(environ)  # bounded by Content-Length
    while chunk := stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    answer = {
        "size": size,
        "sha256": digest.hexdigest(),
        "app_uuid": environ.get("mauth.app_uuid"),
        "version": environ.get("mauth.protocol_version"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "chunked": environ.get("HTTP_TRANSFER_ENCODING"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


@pytest.fixture
def url(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    app = MAuthWSGIMiddleware(hashing_app, config=service.config_for(me))
    with werkzeug_server(app) as base:
        yield base


def pattern(chunks: int, size: int = 65536) -> Iterator[bytes]:
    for n in range(chunks):
        yield bytes([n % 251]) * size


def expected_sha256(chunks: int, size: int = 65536) -> str:
    digest = hashlib.sha256()
    for n in range(chunks):
        digest.update(bytes([n % 251]) * size)
    return digest.hexdigest()


@pytest.mark.parametrize("chunks", [3, 80])  # 192 KiB stays in memory, 5 MiB is spooled
@pytest.mark.parametrize("versions", ["v1", "v2", "v1,v2"])
def test_sync_generator_body(url: str, caller: AppIdentity, chunks: int, versions: str) -> None:
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, versions)
    with httpx.Client(auth=auth) as client:
        answer = client.post(f"{url}/upload?x=1", content=pattern(chunks))
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["size"] == chunks * 65536
    assert seen["sha256"] == expected_sha256(chunks)
    assert seen["app_uuid"] == caller.app_uuid
    assert seen["version"] == (1 if versions == "v1" else 2)
    # Sent sized from the spool, not chunked.
    assert seen["content_length"] == str(chunks * 65536)
    assert seen["chunked"] is None


@pytest.mark.parametrize("chunks", [3, 80])
def test_async_generator_body(url: str, caller: AppIdentity, chunks: int) -> None:
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")

    async def body() -> AsyncIterator[bytes]:
        for chunk in pattern(chunks):
            await asyncio.sleep(0)
            yield chunk

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(auth=auth) as client:
            return await client.put(f"{url}/upload", content=body())

    answer = asyncio.run(run())
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert (seen["size"], seen["sha256"]) == (chunks * 65536, expected_sha256(chunks))
    assert seen["app_uuid"] == caller.app_uuid
    assert seen["content_length"] == str(chunks * 65536)


def test_async_client_with_in_memory_and_multipart_bodies(url: str, caller: AppIdentity) -> None:
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(auth=auth) as client:
            return [
                await client.post(f"{url}/a", content=b"plain bytes"),
                await client.post(f"{url}/b", files={"f": ("f.bin", b"\x00" * 3000)}),
                await client.get(f"{url}/c"),
            ]

    for answer in asyncio.run(run()):
        assert answer.status_code == 200, answer.text
        assert answer.json()["app_uuid"] == caller.app_uuid
    assert answer.json()["size"] == 0


def test_sync_multipart_body(url: str, caller: AppIdentity) -> None:
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")
    with httpx.Client(auth=auth) as client:
        answer = client.post(f"{url}/m", data={"a": "b"}, files={"f": ("f.bin", b"\x01" * 5000)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["app_uuid"] == caller.app_uuid


def test_redirect_resends_the_spooled_body(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    """A 307 makes httpx send the same stream again: the spool is read from its start."""

    def redirecting(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/old":
            get_input_stream(environ).read()
            start_response("307 Temporary Redirect", [("Location", "/new")])
            return [b""]
        return hashing_app(environ, start_response)

    with werkzeug_server(redirecting) as base:
        auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
        with httpx.Client(auth=auth, follow_redirects=True) as client:
            answer = client.post(f"{base}/old", content=pattern(40))
    assert answer.status_code == 200
    assert answer.json()["sha256"] == expected_sha256(40)
    assert answer.json()["size"] == 40 * 65536


def test_failing_generator_raises_body_read_error_and_closes_the_spool(
    url: str, caller: AppIdentity
) -> None:
    def broken() -> Iterator[bytes]:
        yield b"x" * (2 * 1024 * 1024)  # past the threshold: a temporary file is open
        raise OSError("disk gone")

    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v2")
    before = _open_fds()
    with httpx.Client(auth=auth) as client, pytest.raises(BodyReadError, match="OSError"):
        client.post(f"{url}/upload", content=broken())
    gc.collect()
    assert _open_fds() <= before


def test_failing_async_generator_raises_body_read_error(url: str, caller: AppIdentity) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (2 * 1024 * 1024)
        raise ValueError("nope")

    async def run() -> None:
        async with httpx.AsyncClient(auth=MAuthHttpx(caller.app_uuid, caller.private_key)) as c:
            await c.post(f"{url}/upload", content=broken())

    with pytest.raises(BodyReadError, match="ValueError"):
        asyncio.run(run())


def test_cancelled_async_upload_leaves_no_task_or_file(url: str, caller: AppIdentity) -> None:
    """Cancelling the request while the body is being spooled closes the spool file and
    leaves no task behind."""
    started = asyncio.Event

    async def run() -> tuple[int, int]:
        begun = started()

        async def slow() -> AsyncIterator[bytes]:
            for _ in range(1000):
                yield b"y" * (512 * 1024)
                begun.set()
                await asyncio.sleep(0.01)

        before = _open_fds()
        async with httpx.AsyncClient(auth=MAuthHttpx(caller.app_uuid, caller.private_key)) as c:
            task = asyncio.create_task(c.post(f"{url}/upload", content=slow()))
            await begun.wait()
            await asyncio.sleep(0.1)  # a few MiB in: the spool file exists
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        gc.collect()
        # The body's own async generator, left unfinished, is closed by asyncio's finalizer
        # task on the next turns of the loop: let it run, then nothing may be pending.
        await asyncio.sleep(0.05)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return [repr(t)[:300] for t in others], _open_fds() - before

    tasks_left, fds_left = asyncio.run(run())
    assert tasks_left == [], tasks_left
    assert fds_left <= 0


def test_sync_client_refuses_an_async_body(url: str, caller: AppIdentity) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x"

    with (
        httpx.Client(auth=MAuthHttpx(caller.app_uuid, caller.private_key)) as client,
        pytest.raises(TypeError, match="AsyncClient"),
    ):
        client.post(f"{url}/upload", content=body())


def test_spooled_body_is_closed_by_close() -> None:
    import tempfile

    file = tempfile.TemporaryFile()  # noqa: SIM115 - the stream under test closes it
    file.write(b"abc")
    stream = SpooledBody(file, 3)
    assert b"".join(stream) == b"abc"
    assert b"".join(stream) == b"abc"  # re-iterable: read from the start again
    stream.close()
    assert file.closed


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- bounded memory, measured in a fresh process ------------------------------------

MEMORY_CHILD = r"""
import asyncio, json, sys
import httpx
from mauth_client.httpx_mauth import MAuthHttpx

url, app_uuid, key_file, mode, mib = sys.argv[1:6]
auth = MAuthHttpx(app_uuid, open(key_file).read(), "v1,v2")
CHUNK = 64 * 1024

def body():
    for n in range(int(mib) * 16):
        yield bytes([n % 251]) * CHUNK

async def abody():
    for chunk in body():
        yield chunk

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

def reset_peak():
    # Linux: writing 5 to clear_refs resets the high-water mark (VmHWM) to the
    # current RSS, so the peak measured next is the upload's own.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status("VmRSS")

def peak():
    return status("VmHWM")

if mode == "sync":
    with httpx.Client(auth=auth, timeout=120) as client:
        client.post(url, content=b"warm-up")
        before = reset_peak()
        answer = client.post(url, content=body())
else:
    async def run():
        async with httpx.AsyncClient(auth=auth, timeout=120) as client:
            await client.post(url, content=b"warm-up")
            before = reset_peak()
            return before, await client.post(url, content=abody())
    before, answer = asyncio.run(run())
print(json.dumps({"added": peak() - before, "answer": answer.json()}))
"""


def measure_upload(url: str, caller: AppIdentity, mode: str, mib: int, key_file: str) -> Any:
    """Peak RSS growth of a fresh process uploading a ``mib`` MiB generator body."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, url, caller.app_uuid, key_file, mode, str(mib)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_large_generator_upload_uses_bounded_memory(
    url: str, caller: AppIdentity, mode: str, tmp_path: Any
) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(caller.private_key)
    mib = 64
    result = measure_upload(f"{url}/upload", caller, mode, mib, str(key_file))
    assert result["answer"]["size"] == mib * 1024 * 1024
    assert result["answer"]["sha256"] == expected_sha256(mib * 16)
    assert result["answer"]["app_uuid"] == caller.app_uuid
    added_mib = result["added"] / 2**20
    print(f"{mode}: {mib} MiB generator upload added {added_mib:.1f} MiB peak RSS")
    assert added_mib < 64  # before bounded streaming: about 250 MiB


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_same_origin_redirect_re_signs_the_spooled_body(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity, mode: str
) -> None:
    """With the redirect hook (auth.client()), a 307 hop is signed afresh for its new path,
    its spooled body hashed from the file: the middleware behind /new authenticates it."""

    def redirecting(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/old":
            get_input_stream(environ).read()
            start_response("307 Temporary Redirect", [("Location", "/new")])
            return [b""]
        return hashing_app(environ, start_response)

    app = MAuthWSGIMiddleware(redirecting, config=service.config_for(me), exempt={"/old"})
    auth = MAuthHttpx(caller.app_uuid, caller.private_key, "v1,v2")
    with werkzeug_server(app) as base:
        if mode == "sync":
            with auth.client(follow_redirects=True) as client:
                answer = client.post(f"{base}/old", content=pattern(40))
        else:

            async def body() -> AsyncIterator[bytes]:
                for chunk in pattern(40):
                    yield chunk

            async def run() -> httpx.Response:
                async with auth.async_client(follow_redirects=True) as client:
                    return await client.post(f"{base}/old", content=body())

            answer = asyncio.run(run())
    assert answer.status_code == 200, answer.text
    assert answer.history[0].status_code == 307
    assert answer.json()["app_uuid"] == caller.app_uuid
    assert answer.json()["sha256"] == expected_sha256(40)


def test_a_streamed_text_chunk_with_a_lone_surrogate_is_a_body_read_error() -> None:
    """The spool's chunks follow body.py's rule: a precise error, not UnicodeEncodeError."""
    from mauth_client.exceptions import BodyReadError
    from mauth_client.spool import as_bytes

    assert as_bytes("π") == "π".encode()
    with pytest.raises(BodyReadError, match="surrogate"):
        as_bytes("\ud800")
