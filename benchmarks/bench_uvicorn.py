"""Real-server benchmark: uvicorn serving the same app bare and behind MAuth, interleaved.

    python3 benchmarks/bench_uvicorn.py            # full: 5 rounds x 8 s per server
    python3 benchmarks/bench_uvicorn.py --quick    # about 30 s in all
    python3 benchmarks/bench_uvicorn.py --no-upstream --no-slow --rounds 3 --duration 5

Each server is its own uvicorn process (one worker, 127.0.0.1, a free port): the app
bare, the app wrapped in ``MAuthASGIMiddleware`` and, as a reference line, the app
wrapped in upstream mauth-client 1.10.1's middleware (run by the Python of a separate
virtual environment, since both packages are called ``mauth_client``: the first of
``benchmarks/.upstream-venv`` and ``/tmp/upstream-venv`` that exists, or
``--upstream-python``; it needs ``uvicorn`` and ``starlette`` installed too). Both protected
servers read the same environment (``APP_UUID``, ``PRIVATE_KEY``, ``MAUTH_URL``,
``MAUTH_API_VERSION``, ``MAUTH_MODE``) and fetch the caller's key from a
:class:`~mauth_client.testing.LocalMAuthService` in this process; one warm-up
request caches it before anything is timed.

The load comes from separate processes (``--procs`` x ``--conns`` keep-alive
connections, raw sockets, one request in flight per connection) replaying requests
signed (V2, a ~1 KB POST body) before each round, outside the timed loop. The
servers are measured alternately, round after round, so every ratio compares
figures taken under the same machine conditions. Throughput is the median over
rounds and its ratio the median of the per-round ratios; p50/p99 come from all
requests of all rounds. Every signed answer must be a 200 (the count of others is
printed); before timing, each protected server must name the caller to the app and
refuse an unsigned request.

The second scenario: 20 requests from registered apps whose keys are not cached
wait on a key service that answers after 2 s; meanwhile one request from an app
whose key is cached is sent, and its latency is what counts (the issue's target:
under 100 ms).

Every loop stops on a count and on a deadline; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
ROUTE = "/api/v2/studies/9f3c/subjects.json"
QUERY = "per_page=50&page=2"
UPSTREAM_PYTHONS = (
    HERE / ".upstream-venv" / "bin" / "python",
    Path("/tmp/upstream-venv/bin/python"),
)
MAX_REQUESTS_PER_CONNECTION = 1_000_000  # the count bound of every load loop
SERVER_START_TIMEOUT = 30.0
THROUGHPUT_TARGET = 1.5
P99_TARGET = 1.5
CACHED_TARGET_MS = 100.0


# --- the server side (runs in a child process, possibly upstream's venv) ------------------


def make_app(kind: str, framework: str) -> Any:
    """The app under test: a Starlette route (or a bare ASGI callable) that reads the
    body and answers a small JSON document; ``kind`` picks the wrapping."""
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def subjects(request: Request) -> JSONResponse:
            body = await request.body()
            who = request.scope.get("mauth.app_uuid")
            return JSONResponse({"ok": True, "bytes": len(body), "caller": who})

        app: Any = Starlette(routes=[Route(ROUTE, subjects, methods=["POST"])])
    else:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            size, more = 0, True
            while more:
                message = await receive()
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            body = json.dumps(
                {"ok": True, "bytes": size, "caller": scope.get("mauth.app_uuid")}
            ).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    if kind == "bare":
        return app
    if kind == "ours":
        sys.path.insert(0, str(ROOT))
        from mauth_client.config import Config
        from mauth_client.middlewares import MAuthASGIMiddleware

        return MAuthASGIMiddleware(app, config=Config.from_env())
    if kind == "upstream":
        # Upstream's Config reads the environment when its module is imported.
        from mauth_client.middlewares import MAuthASGIMiddleware as UpstreamASGIMiddleware

        logging_off()
        return UpstreamASGIMiddleware(app)
    raise SystemExit(f"unknown server kind {kind!r}")


def logging_off() -> None:
    import logging

    logging.getLogger("mauth_asgi").disabled = True


def serve(kind: str, framework: str) -> None:
    """Run uvicorn (one worker) on a free port of 127.0.0.1; print the port once it listens."""
    import socket

    import uvicorn

    app = make_app(kind, framework)
    # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
    # says TCP, and without it every response (head and body are two writes) waits 40 ms
    # for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", backlog=2048, workers=1
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                await task
                raise SystemExit("uvicorn did not start")
            await asyncio.sleep(0.01)
        print(sock.getsockname()[1], flush=True)
        await task

    asyncio.run(run())


# --- a minimal keep-alive HTTP/1.1 client over raw sockets ---------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    closing = b"\r\nconnection: close" in lower
    if b"\r\ntransfer-encoding: chunked" in lower:
        parts = []
        for _ in range(100_000):
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        return status, b"".join(parts), closing
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        return status, await reader.read(), True
    end = lower.find(b"\r\n", start + 2)
    return status, await reader.readexactly(int(lower[start + 17 : end])), closing


def http_request(headers: dict[str, str], body: bytes, route: str = ROUTE) -> bytes:
    lines = [
        f"POST {route}?{QUERY} HTTP/1.1",
        "Host: localhost",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _connection(
    port: int,
    requests: list[bytes],
    offset: int,
    stop_at: float,
    record_from: float,
    latencies: list[float],
    statuses: Counter[int],
    errors: Counter[str],
) -> None:
    reader = writer = None
    try:
        for n in range(MAX_REQUESTS_PER_CONNECTION):
            if time.perf_counter() >= stop_at:
                break
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            assert reader is not None
            start = time.perf_counter()
            writer.write(requests[(offset + n) % len(requests)])
            status, _, closing = await read_response(reader)
            end = time.perf_counter()
            if end >= record_from and end < stop_at:
                latencies.append(end - start)
                statuses[status] += 1
            if closing:
                writer.close()
                reader = writer = None
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        errors[type(exc).__name__] += 1
    finally:
        if writer is not None:
            writer.close()


def load(
    port: int, requests: list[bytes], conns: int, duration: float, warmup: float
) -> dict[str, Any]:
    """One load process's share of a round: ``conns`` keep-alive connections for
    ``warmup + duration`` seconds; only the last ``duration`` seconds are recorded."""

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        begin = time.perf_counter()
        record_from = begin + warmup
        stop_at = record_from + duration
        await asyncio.gather(
            *(
                _connection(
                    port, requests, i * 7, stop_at, record_from, latencies, statuses, errors
                )
                for i in range(conns)
            )
        )
        return {
            "latencies": latencies,
            "statuses": dict(statuses),
            "errors": dict(errors),
            "seconds": duration,
        }

    return asyncio.run(run())


# --- the parent: keys, servers, rounds ------------------------------------------------------


@dataclass
class Server:
    """A server child process and what the rounds measured of it."""

    name: str
    kind: str
    process: subprocess.Popen[str]
    stderr: IO[str]
    port: int = 0
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def wait_ready(self) -> Server:
        """Read the port the child prints once uvicorn listens (it exits if it cannot)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.wait(5)
            self.stderr.seek(0)
            raise RuntimeError(f"{self.name} server did not start:\n{self.stderr.read()[-2000:]}")
        self.port = int(line)
        return self


def mauth_env(service: Any, identity: Any) -> dict[str, str]:
    """The environment both protected servers read: upstream's names, which ours reads too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAUTH_", "PYTHON"))}
    env.pop("APP_UUID", None)
    env.pop("PRIVATE_KEY", None)
    env.update(
        {
            "APP_UUID": identity.app_uuid,
            "PRIVATE_KEY": identity.private_key,
            "MAUTH_URL": service.url,
            "MAUTH_API_VERSION": "v1",
            "MAUTH_MODE": "local",
        }
    )
    return env


@contextmanager
def server_process(
    name: str, kind: str, python: str, env: dict[str, str], framework: str
) -> Iterator[Server]:
    """Start a server child (``wait_ready`` gives its port); always stop it (terminate,
    then kill)."""
    # Run from a neutral folder: the child must import the mauth_client of its own
    # environment (upstream's venv), never this checkout by accident.
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            [python, str(HERE / "bench_uvicorn.py"), "--serve", kind, "--app", framework],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        try:
            yield Server(name, kind, process, stderr)
        finally:
            process.terminate()
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:  # a loop blocked in a key fetch ignores SIGTERM
                process.kill()
                process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


async def one_request(port: int, request: bytes, timeout: float) -> tuple[int, bytes, float]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        start = time.perf_counter()
        writer.write(request)
        status, body, _ = await asyncio.wait_for(read_response(reader), timeout)
        return status, body, time.perf_counter() - start
    finally:
        writer.close()


def sign_requests(signer: Any, count: int) -> list[bytes]:
    """``count`` distinct POST requests with a ~1 KB JSON body, signed now (V2 only)."""
    from mauth_client.signable import RequestSignable

    out = []
    for i in range(count):
        body = json.dumps(
            {"subject": {"id": i, "name": "Ada", "site": "x" * 960}}, separators=(",", ":")
        ).encode()
        signable = RequestSignable(method="POST", path=ROUTE, query_string=QUERY, body=body)
        out.append(http_request(signer.signed_headers(signable), body))
    return out


def warm(server: Server, request: bytes, caller: str) -> None:
    """One signed request (caching the caller's key in a protected server), checked: the
    answer is 200 and, behind MAuth, names the caller; an unsigned request is refused."""
    status, body, _ = asyncio.run(one_request(server.port, request, 15.0))
    if status != 200:
        raise RuntimeError(f"{server.name}: warm-up request answered {status}: {body[:300]!r}")
    if server.kind == "bare":
        return
    if json.loads(body).get("caller") != caller:
        raise RuntimeError(f"{server.name}: the app did not see the caller: {body[:300]!r}")
    unsigned = http_request({}, b"{}")
    status, body, _ = asyncio.run(one_request(server.port, unsigned, 15.0))
    if status != 401:
        raise RuntimeError(f"{server.name}: an unsigned request answered {status}: {body[:300]!r}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def upstream_python(explicit: str | None) -> tuple[str | None, str]:
    """The Python of upstream's venv, or None and the reason it cannot serve."""
    candidates = [Path(explicit)] if explicit else list(UPSTREAM_PYTHONS)
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        return None, (
            "no upstream venv at " + " or ".join(str(p) for p in candidates) + " (create one with "
            "`python3 -m venv benchmarks/.upstream-venv && benchmarks/.upstream-venv/bin/pip "
            "install mauth-client==1.10.1 uvicorn starlette`)"
        )
    probe = subprocess.run(
        [
            str(found),
            "-c",
            "import mauth_client, uvicorn, starlette, importlib.metadata as m; "
            "print(m.version('mauth-client'))",
        ],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=60,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"{found} cannot import mauth_client, uvicorn and starlette: {last}"
    return str(found), probe.stdout.strip()


def run_rounds(
    servers: list[Server],
    pool: concurrent.futures.ProcessPoolExecutor,
    signer: Any,
    args: argparse.Namespace,
) -> None:
    for round_no in range(args.rounds):
        # Fresh signatures each round (outside the timed loop) keep every request well
        # inside the 300 s time window whatever --duration and --rounds are.
        requests = sign_requests(signer, args.signed)
        order = servers if round_no % 2 == 0 else list(reversed(servers))
        for server in order:
            futures = [
                pool.submit(load, server.port, requests, args.conns, args.duration, args.warmup)
                for _ in range(args.procs)
            ]
            results = [f.result(timeout=args.duration + args.warmup + 120) for f in futures]
            ok = 0
            for result in results:
                statuses = {int(k): v for k, v in result["statuses"].items()}
                server.statuses.update(statuses)
                server.errors.update(result["errors"])
                ok += statuses.get(200, 0)
                server.latencies.extend(result["latencies"])
            server.rates.append(ok / args.duration)
        print(
            f"  round {round_no + 1}/{args.rounds}: "
            + ", ".join(f"{s.name} {s.rates[-1]:.0f} req/s" for s in servers),
            flush=True,
        )


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")


def print_throughput_table(servers: list[Server]) -> None:
    """Throughput and latency per server. The throughput ratio is the median of the
    per-round ratios (each round's figures were taken back to back)."""
    bare = servers[0]
    bare_p99 = percentile(bare.latencies, 0.99)
    print()
    print(
        f"{'server':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8} "
        f"{'bare/x req/s':>13} {'p99 x/bare':>11}"
    )
    for server in servers:
        rate = statistics.median(server.rates)
        p50 = percentile(server.latencies, 0.50)
        p99 = percentile(server.latencies, 0.99)
        bad = sum(v for k, v in server.statuses.items() if k != 200) + sum(server.errors.values())
        paired = statistics.median(
            ratio(b, x) for b, x in zip(bare.rates, server.rates, strict=True)
        )
        throughput_ratio = "" if server is bare else f"{paired:12.2f}x"
        p99_ratio = "" if server is bare else f"{ratio(p99, bare_p99):10.2f}x"
        print(
            f"{server.name:32} {rate:8.0f} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {bad:8d} "
            f"{throughput_ratio:>13} {p99_ratio:>11}"
        )
    print(
        f"targets for mauth_client: bare/protected throughput <= {THROUGHPUT_TARGET}x, "
        f"p99 protected/bare <= {P99_TARGET}x"
    )
    for server in servers:
        if server.errors or set(server.statuses) - {200}:
            print(
                f"  {server.name}: statuses {dict(server.statuses)}, errors {dict(server.errors)}"
                " -- the figures of this line are not comparable"
            )


def slow_key_scenario(specs: list[tuple[str, str, str]], args: argparse.Namespace) -> None:
    """Print, for each server, the latency of a request from an app whose key is cached
    while ``args.waiting`` requests from apps whose keys are not wait on a key service
    that takes ``args.slow_latency`` seconds to answer. Each server is a fresh process,
    so each starts with an empty cache."""
    from mauth_client.signable import RequestSignable
    from mauth_client.signer import Signer
    from mauth_client.testing import LocalMAuthService

    body = b'{"subject":{"name":"Ada"}}'
    signable = RequestSignable(method="POST", path=ROUTE, query_string=QUERY, body=body)

    def signed_by(identity: Any) -> bytes:
        signer = Signer(identity.app_uuid, identity.private_key, "v2")
        return http_request(signer.signed_headers(signable), body)

    print(
        f"\ncached app's request while {args.waiting} requests wait on a slow key service "
        f"({args.slow_latency:g} s)"
    )
    print(f"{'server':32} {'latency ms':>11}  note")
    with LocalMAuthService(latency=args.slow_latency) as service:
        me = service.new_app()
        cached = service.new_app()
        waiting = [service.new_app() for _ in range(args.waiting)]
        for name, kind, python in specs:
            with server_process(name, kind, python, mauth_env(service, me), args.app) as server:
                server.wait_ready()
                warm(server, signed_by(cached), cached.app_uuid)  # caches its key (slowly)
                slow_requests = [signed_by(identity) for identity in waiting]
                latency, note = asyncio.run(
                    _slow_scenario(server, slow_requests, signed_by(cached), args)
                )
                if note.startswith("timed out"):  # its event loop is stuck: no graceful stop
                    server.process.kill()
                print(f"{name:32} {latency:>11}  {note}", flush=True)
    print(f"target for mauth_client: < {CACHED_TARGET_MS:.0f} ms")


async def _slow_scenario(
    server: Server, slow_requests: list[bytes], cached_request: bytes, args: argparse.Namespace
) -> tuple[str, str]:
    timeout = args.slow_timeout
    # Connect everything first, so only request handling is timed.
    conns = [
        await asyncio.wait_for(asyncio.open_connection(HOST, server.port), 10)
        for _ in range(len(slow_requests) + 1)
    ]
    try:
        for (_, writer), request in zip(conns[:-1], slow_requests, strict=True):
            writer.write(request)
        await asyncio.sleep(0.2)  # the waiting requests now wait on the key service
        reader, writer = conns[-1]
        start = time.perf_counter()
        writer.write(cached_request)
        try:
            status, _, _ = await asyncio.wait_for(read_response(reader), timeout)
        except asyncio.TimeoutError:
            return f"> {timeout * 1e3:.0f}", f"timed out after {timeout:g} s"
        elapsed = time.perf_counter() - start
        note = f"status {status}"
        if server.kind == "ours":  # a bounded wait for the others, to check they succeed
            try:
                outcomes = await asyncio.wait_for(
                    asyncio.gather(
                        *(read_response(r) for r, _ in conns[:-1]), return_exceptions=True
                    ),
                    args.slow_latency * len(slow_requests) + 10,
                )
            except asyncio.TimeoutError:
                return f"{elapsed * 1e3:.1f}", note + "; the waiting requests did not finish"
            good = sum(1 for o in outcomes if not isinstance(o, BaseException) and o[0] == 200)
            note += f"; {good}/{len(outcomes)} waiting requests answered 200"
        return f"{elapsed * 1e3:.1f}", note
    finally:
        for _, writer in conns:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 2.5 s: about 30 s in all")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    parser.add_argument("--duration", type=float, help="recorded seconds per server per round")
    parser.add_argument("--warmup", type=float, help="unrecorded seconds before each round's")
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument("--conns", type=int, default=25, help="connections per load process")
    parser.add_argument("--signed", type=int, default=64, help="distinct pre-signed requests")
    parser.add_argument("--app", choices=("starlette", "asgi"), default="starlette")
    parser.add_argument("--no-upstream", action="store_true", help="leave out upstream 1.10.1")
    parser.add_argument("--upstream-python", help="python of a venv with mauth-client 1.10.1")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-key-service scenario")
    parser.add_argument("--slow-latency", type=float, default=2.0, help="key service delay (s)")
    parser.add_argument(
        "--waiting", type=int, default=20, help="requests waiting on the key service"
    )
    parser.add_argument(
        "--slow-timeout", type=float, default=15.0, help="bound on the cached request (s)"
    )
    parser.add_argument("--serve", choices=("bare", "ours", "upstream"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.app)
        return
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.duration = args.duration or (2.5 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    if args.quick:
        args.slow_timeout = min(args.slow_timeout, 3.0)

    sys.path.insert(0, str(ROOT))
    import uvicorn

    from mauth_client.signer import Signer
    from mauth_client.testing import LocalMAuthService

    upstream, upstream_note = (None, "left out (--no-upstream)")
    if not args.no_upstream:
        upstream, upstream_note = upstream_python(args.upstream_python)

    load_before = os.getloadavg()
    print(
        f"uvicorn {uvicorn.__version__} (1 worker, h11/asyncio as installed), {args.app} app, "
        f"POST {ROUTE} with a ~1 KB JSON body signed V2"
    )
    print(
        f"load: {args.procs} processes x {args.conns} keep-alive connections; "
        f"{args.rounds} rounds x {args.duration:g} s (+{args.warmup:g} s warm-up) per server, "
        f"servers alternated; os.cpu_count() = {os.cpu_count()}; "
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    print(
        f"upstream reference: {upstream_note if upstream is None else 'mauth-client ' + upstream_note}"
    )

    ctx = multiprocessing.get_context("spawn")
    with (
        LocalMAuthService() as service,
        concurrent.futures.ProcessPoolExecutor(args.procs, mp_context=ctx) as pool,
    ):
        me = service.new_app()
        caller = service.new_app()
        signer = Signer(caller.app_uuid, caller.private_key, "v2")
        env = mauth_env(service, me)
        specs = [("bare", "bare", sys.executable), ("mauth_client (this)", "ours", sys.executable)]
        if upstream is not None:
            specs.append((f"upstream {upstream_note} (reference)", "upstream", upstream))
        with ExitStack() as stack:
            servers = [
                stack.enter_context(server_process(name, kind, python, env, args.app))
                for name, kind, python in specs
            ]
            for server in servers:  # started together, so their imports overlap
                server.wait_ready()
            warmup_request = sign_requests(signer, 1)[0]
            for server in servers:
                warm(
                    server, warmup_request, caller.app_uuid
                )  # the protected ones cache the caller's key here
            list(pool.map(int, range(args.procs)))  # start the load processes before timing
            run_rounds(servers, pool, signer, args)
            print_throughput_table(servers)

    if not args.no_slow:
        slow_specs = [("mauth_client (this)", "ours", sys.executable)]
        if upstream is not None:
            slow_specs.append((f"upstream {upstream_note} (reference)", "upstream", upstream))
        slow_key_scenario(slow_specs, args)
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()
