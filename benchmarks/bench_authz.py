"""Authorization and observability cost: the WSGI middleware with a permissions rule and a
subscribed Prometheus exporter against the same middleware without them, in one run.

    python3 benchmarks/bench_authz.py

Target (issue 13): with rules + Prometheus at most 1.15x the plain middleware per
request. Rounds are interleaved (plain, with authz, ...) so both figures of the ratio
saw the same machine; each figure is the best round (the median of the paired
per-round ratios is printed too). Also shown, for information:
the plain middleware when ``opentelemetry.trace`` is imported but no tracer provider
is configured (the check the hook then makes on every request).
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_core import APP_UUID, BODY, METHOD, PATH, QUERY, make_key  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from mauth_client import observability  # noqa: E402
from mauth_client.keys import public_key_pem  # noqa: E402
from mauth_client.middlewares import MAuthWSGIMiddleware  # noqa: E402
from mauth_client.signable import RequestSignable  # noqa: E402
from mauth_client.signer import Signer  # noqa: E402
from mauth_client.testing import LocalMAuthService  # noqa: E402

TARGET = 1.15
NUMBER = 50
ROUNDS = 120


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def timed(fn: Callable[[], None], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def main() -> None:
    key, pem = make_key()
    with LocalMAuthService() as service:
        me = service.new_app()
        service.add_app(APP_UUID, public_key_pem(key))
        plain = MAuthWSGIMiddleware(bare_app, config=service.config_for(me))
        authz = MAuthWSGIMiddleware(
            bare_app,
            config=service.config_for(me, permissions={APP_UUID: ["studies:write"]}),
            rules=[
                ("POST", PATH.rsplit("/", 1)[0] + "/*", "studies:write"),
                ("*", "/admin/*", "admin"),
            ],
        )
        headers = Signer(APP_UUID, pem, "v2").signed_headers(
            RequestSignable(method=METHOD, path=PATH, query_string=QUERY, body=BODY)
        )
        http = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}

        def call(app: Any) -> Callable[[], None]:
            def run() -> None:
                statuses: list[str] = []
                environ = {
                    "REQUEST_METHOD": METHOD,
                    "PATH_INFO": PATH,
                    "QUERY_STRING": QUERY,
                    "RAW_URI": f"{PATH}?{QUERY}",
                    "CONTENT_LENGTH": str(len(BODY)),
                    "wsgi.input": io.BytesIO(BODY),
                    **http,
                }
                b"".join(app(environ, lambda s, h, *a: statuses.append(s)))
                assert statuses[0].startswith("200"), statuses

            return run

        run_plain, run_authz = call(plain), call(authz)
        run_plain(), run_authz()  # warm the key caches
        registry = CollectorRegistry()
        import opentelemetry.trace  # noqa: F401  (the API only: no provider configured)

        otel_module = sys.modules.pop("opentelemetry.trace")
        results: dict[str, list[float]] = {"plain": [], "authz": [], "otel-imported": []}
        for _ in range(ROUNDS):
            results["plain"].append(timed(run_plain, NUMBER))
            stop = observability.prometheus(registry)
            results["authz"].append(timed(run_authz, NUMBER))
            stop()
            sys.modules["opentelemetry.trace"] = otel_module
            assert observability.tracer() is None
            results["otel-imported"].append(timed(run_plain, NUMBER))
            del sys.modules["opentelemetry.trace"]
        sys.modules["opentelemetry.trace"] = otel_module
        best = {name: min(times) for name, times in results.items()}
        ratio = best["authz"] / best["plain"]
        paired = sorted(a / p for a, p in zip(results["authz"], results["plain"], strict=True))
        print(
            f"RSA-2048 V2, {METHOD} {PATH}?{QUERY}, body {len(BODY)} bytes, best of {ROUNDS} x {NUMBER}"
        )
        print(f"plain middleware:                         {best['plain']:7.1f} us/request")
        print(
            f"rule + permissions + Prometheus exporter: {best['authz']:7.1f} us/request "
            f"= {ratio:.3f}x (target <= {TARGET}x)"
        )
        print(f"median of the {ROUNDS} paired per-round ratios:  {paired[len(paired) // 2]:.3f}x")
        print(
            f"plain, opentelemetry-api imported, no provider: {best['otel-imported']:7.1f} us/request "
            f"= {best['otel-imported'] / best['plain']:.3f}x"
        )
        assert ratio <= TARGET, f"{ratio:.3f}x is over the {TARGET}x target"


if __name__ == "__main__":
    main()
