"""Replay protection's cost in the WSGI middleware, measured interleaved in one run.

    python3 benchmarks/bench_replay.py [--requests 400] [--rounds 7]

1. Memory cache: the middleware's per-request time with replay protection, as a ratio
   to the same middleware without it (target: within 1.1x).
2. Redis on loopback (a real redis-server, started here): the latency each request
   gains (p50 and p99), next to a raw redis-py PING and SET NX EXAT round trip measured
   in the same rounds (target: at most one round trip).

Every request is signed afresh (V1 and V2, distinct bodies) before the timing; the
caches are emptied between rounds, outside the timed part, so each round reuses them.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mauth_client.middlewares import MAuthWSGIMiddleware  # noqa: E402
from mauth_client.replay import MemoryReplayCache, RedisReplayCache  # noqa: E402
from mauth_client.signable import RequestSignable  # noqa: E402
from mauth_client.signer import Signer  # noqa: E402
from mauth_client.testing import LocalMAuthService  # noqa: E402
from mauth_client.testing.redis_server import LocalRedisServer  # noqa: E402

PATH, QUERY = "/orders/42", "expand=items"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def signed_environs(signer: Signer, count: int) -> list[tuple[dict[str, str], bytes]]:
    out = []
    for n in range(count):
        body = b'{"order": %d, "items": [1, 2, 3]}' % n
        headers = signer.signed_headers(
            RequestSignable(method="POST", path=PATH, query_string=QUERY, body=body)
        )
        http = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        out.append((http, body))
    return out


def environ(http: dict[str, str], body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "QUERY_STRING": QUERY,
        "RAW_URI": f"{PATH}?{QUERY}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **http,
    }


def call(wsgi: Any, http: dict[str, str], body: bytes) -> None:
    statuses: list[str] = []
    b"".join(wsgi(environ(http, body), lambda s, h, *a: statuses.append(s)))
    if not statuses[0].startswith("200"):
        raise AssertionError(statuses)


def per_request(
    apps: dict[str, Any],
    requests: list[tuple[dict[str, str], bytes]],
    rounds: int,
    between: Callable[[], None],
    extra: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Per-request times (us) of each app over the same requests, interleaved request by
    request (a, b, a, b...), so that every figure saw the same machine conditions."""
    times: dict[str, list[float]] = {name: [] for name in [*apps, *(extra or {})]}
    clock = time.perf_counter
    for _ in range(rounds):
        between()
        for http, body in requests:
            for name, wsgi in apps.items():
                start = clock()
                call(wsgi, http, body)
                times[name].append((clock() - start) * 1e6)
            for name, fn in (extra or {}).items():
                start = clock()
                fn()
                times[name].append((clock() - start) * 1e6)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with LocalMAuthService() as service, LocalRedisServer() as redis_server:
        me, caller = service.new_app(), service.new_app()
        config = service.config_for(me)
        memory = MemoryReplayCache()
        redis_cache = RedisReplayCache(redis_server.url)
        plain = MAuthWSGIMiddleware(app, config=config)
        with_memory = MAuthWSGIMiddleware(app, config=config.with_overrides(replay_cache=memory))
        with_redis = MAuthWSGIMiddleware(
            app, config=config.with_overrides(replay_cache=redis_cache)
        )
        raw = redis_cache.client
        counter = iter(range(10**9))

        def raw_set() -> object:
            return raw.set(f"bench:raw:{next(counter)}", b"1", nx=True, exat=2**31)

        def reset() -> None:
            memory.clear()
            raw.flushdb()

        print(
            f"WSGI middleware, RSA-2048, POST; {args.requests} requests x {args.rounds} rounds, "
            "interleaved request by request"
        )
        for versions in ("v2", "v1,v2"):
            signer = Signer(caller.app_uuid, caller.private_key, versions)
            requests = signed_environs(signer, args.requests)
            reset()
            for wsgi in (plain, with_memory, with_redis):
                call(wsgi, *requests[0])  # warm the key caches and the Redis pool
            reset()

            mem = per_request({"plain": plain, "memory": with_memory}, requests, args.rounds, reset)
            p50_plain, p50_mem = statistics.median(mem["plain"]), statistics.median(mem["memory"])
            mean_plain, mean_mem = statistics.fmean(mem["plain"]), statistics.fmean(mem["memory"])
            print(
                f"[{versions}] memory cache: p50 {p50_mem:6.1f} us vs {p50_plain:6.1f} us without "
                f"= {p50_mem / p50_plain:.3f}x (mean {mean_mem / mean_plain:.3f}x; "
                "target <= 1.1x)"
            )

            red = per_request(
                {"plain": plain, "redis": with_redis},
                requests,
                args.rounds,
                reset,
                extra={"ping": raw.ping, "set": raw_set},
            )
            added = [r - p for r, p in zip(red["redis"], red["plain"], strict=True)]
            for label, q in (("p50", 0.5), ("p99", 0.99)):
                print(
                    f"[{versions}] redis {label}: added {pct(added, q):6.1f} us per request "
                    f"(plain {pct(red['plain'], q):6.1f}, with redis {pct(red['redis'], q):6.1f});"
                    f" raw round trip PING {pct(red['ping'], q):6.1f} us, "
                    f"SET NX EXAT {pct(red['set'], q):6.1f} us"
                )
            ratio = statistics.median(added) / statistics.median(red["set"])
            print(f"[{versions}] redis: added p50 = {ratio:.2f} raw SET round trips (target <= 1)")


def rotation() -> None:
    """Key rotation: the first request signed with a new key after the interval."""
    with LocalMAuthService() as service:
        me, caller = service.new_app(), service.new_app()
        config = service.config_for(me, min_key_refetch_interval=0.5)
        wsgi = MAuthWSGIMiddleware(app, config=config)
        old = signed_environs(Signer(caller.app_uuid, caller.private_key, "v2"), 2)
        call(wsgi, *old[0])
        rotated = service.rotate_key(caller)
        new = signed_environs(Signer(rotated.app_uuid, rotated.private_key, "v2"), 2)
        time.sleep(0.6)
        before = service.calls("security_tokens", caller.app_uuid)
        start = time.perf_counter()
        call(wsgi, *new[0])  # raises unless 200
        first = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        call(wsgi, *new[1])
        cached = (time.perf_counter() - start) * 1e3
        fetches = service.calls("security_tokens", caller.app_uuid) - before
        print(
            f"key rotation: first request with the new key after the interval: 200 with "
            f"{fetches} fetch, {first:.1f} ms (the next one {cached:.2f} ms, cached)"
        )


if __name__ == "__main__":
    main()
    rotation()
