"""Compatibility entry points: as fast as the core they wrap (issue 9).

    python3 benchmarks/bench_compat.py
    python3 benchmarks/bench_compat.py --upstream-python /tmp/upstream-venv/bin/python

1. Per request, with the caller's key cached: ``RequestSignable(method=, url=, body=)``
   + ``Signed.from_headers(headers)`` + ``LocalAuthenticator(signable, signed,
   logger).is_authentic()``, against the raw work it cannot avoid: SHA-512 of the
   body and one RSA verify (target <= 1.6x). The reused core ``Authenticator`` on the
   same work is shown too.
2. ``authenticate_event(event, config=cfg)`` 200 times: key fetches (target 1).
3. ``MAuth(app_uuid, pem, "v2")`` 50 times with one PEM, the first parse included
   (the parsed-key cache is emptied before each round), against upstream mauth-client
   1.10.1's constructor in its own virtual environment (target <= 1.2x).

Ratios compare figures measured in interleaved rounds of the same run (the upstream
constructor in a child process that is driven round by round), so they hold on a
loaded machine. Keys come from a real local MAuth service on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_core import APP_UUID, BODY, METHOD, PKCS1V15, SHA512, URL, best_of, make_key  # noqa: E402

from mauth_client.authenticator import (  # noqa: E402
    Authenticator,
    LocalAuthenticator,
    reset_default_authenticator,
)
from mauth_client.keys import (  # noqa: E402
    _load_private_pem,
    _load_private_text,
    public_key_pem,
)
from mauth_client.lambda_authenticator import authenticate_event  # noqa: E402
from mauth_client.requests_mauth import MAuth  # noqa: E402
from mauth_client.signable import RequestSignable  # noqa: E402
from mauth_client.signed import Signed  # noqa: E402
from mauth_client.signer import Signer  # noqa: E402
from mauth_client.testing import LocalMAuthService  # noqa: E402

# Driven by the parent: one line in ("go"), one line out (seconds for 50 constructions).
UPSTREAM_CONSTRUCTOR_CHILD = r"""
import sys, time
from mauth_client.requests_mauth import MAuth
app_uuid, key_path = sys.argv[1:3]
pem = open(key_path).read()
MAuth(app_uuid, pem, "v2")  # warm imports
for line in sys.stdin:
    start = time.perf_counter()
    for _ in range(50):
        MAuth(app_uuid, pem, "v2")
    print(time.perf_counter() - start, flush=True)
"""


def bench_per_request(service: LocalMAuthService, key, pem: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    public = key.public_key()
    me = service.new_app()
    service.add_app(APP_UUID, public_key_pem(key))
    config = service.config_for(me)
    # The environment an upstream user sets; LocalAuthenticator reads it (once).
    os.environ.update(
        {
            "APP_UUID": me.app_uuid,
            "MAUTH_URL": str(config.mauth_url),
            "MAUTH_PRIVATE_KEY": str(config.private_key),
        }
    )
    reset_default_authenticator()
    logger = logging.getLogger("bench_compat")
    headers = Signer(APP_UUID, pem, "v2").signed_headers(
        RequestSignable(method=METHOD, url=URL, body=BODY)
    )
    signed = Signed.from_headers(headers)
    assert signed.v2 is not None
    raw_sig = __import__("base64").b64decode(signed.v2.signature)
    v2_string = RequestSignable(method=METHOD, url=URL, body=BODY).v2_string(
        APP_UUID, signed.v2.time
    )
    core = Authenticator.from_config(config)

    def raw() -> None:
        hashlib.sha512(BODY).hexdigest()
        public.verify(raw_sig, v2_string, PKCS1V15, SHA512)

    def compat() -> None:
        signable = RequestSignable(method=METHOD, url=URL, body=BODY)
        authentic = LocalAuthenticator(signable, Signed.from_headers(headers), logger)
        assert authentic.is_authentic()[0]

    def reused_core() -> None:
        core.authenticate(
            RequestSignable(method=METHOD, url=URL, body=BODY), Signed.from_headers(headers)
        )

    compat()  # the key is fetched here, once
    reused_core()
    before = service.calls("security_tokens")
    # Short blocks, many rounds: on a shared machine some round of each runs unpreempted.
    figures = best_of({"raw": raw, "compat": compat, "core": reused_core}, 200, rounds=31)
    figures["fetches_during_timing"] = service.calls("security_tokens") - before
    return figures


def bench_lambda(service: LocalMAuthService, pem: str) -> dict[str, float]:
    me = service.new_app()
    caller = service.new_app()
    config = service.config_for(me)
    body = BODY.decode()
    headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
        RequestSignable(method="POST", url="/prod/things?b=2&a=1", body=BODY)
    )
    event = {
        "version": "2.0",
        "rawPath": "/prod/things",
        "rawQueryString": "b=2&a=1",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST"}},
        "body": body,
        "isBase64Encoded": False,
    }
    before = service.calls("security_tokens")
    start = time.perf_counter()
    for _ in range(200):
        assert authenticate_event(event, config=config).authentic
    elapsed = time.perf_counter() - start
    return {
        "fetches": service.calls("security_tokens") - before,
        "per_call_us": elapsed / 200 * 1e6,
    }


def bench_constructor(pem: str, upstream_python: str | None, rounds: int = 9) -> dict[str, float]:
    def ours() -> float:
        """50 constructions, the first of them parsing the PEM (the cache is emptied)."""
        _load_private_text.cache_clear()
        _load_private_pem.cache_clear()
        start = time.perf_counter()
        for _ in range(50):
            MAuth(APP_UUID, pem, "v2")
        return time.perf_counter() - start

    ours()  # warm imports
    mine: list[float] = []
    theirs: list[float] = []
    if upstream_python is None:
        for _ in range(rounds):
            mine.append(ours())
        return {"ours_us_per_call": min(mine) / 50 * 1e6}
    with tempfile.TemporaryDirectory() as tmp:
        key_path = Path(tmp) / "key.pem"
        key_path.write_text(pem)
        child = subprocess.Popen(
            [upstream_python, "-c", UPSTREAM_CONSTRUCTOR_CHILD, APP_UUID, str(key_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,  # so the child imports upstream's package, not this checkout
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            for _ in range(rounds):  # interleaved: upstream round, our round
                child.stdin.write("go\n")
                child.stdin.flush()
                theirs.append(float(child.stdout.readline()))
                mine.append(ours())
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    return {
        "ours_us_per_call": min(mine) / 50 * 1e6,
        "upstream_us_per_call": min(theirs) / 50 * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upstream-python",
        default="/tmp/upstream-venv/bin/python" if Path("/tmp/upstream-venv").exists() else None,
        help="python of a venv with mauth-client==1.10.1 (default /tmp/upstream-venv if present)",
    )
    args = parser.parse_args()
    key, pem = make_key()
    with LocalMAuthService() as service:
        r = bench_per_request(service, key, pem)
        lam = bench_lambda(service, pem)
    c = bench_constructor(pem, args.upstream_python)

    print(
        f"RSA-2048, V2, POST {URL}, body {len(BODY)} bytes; best of 31 interleaved rounds of 200 calls"
    )
    print(f"raw SHA-512(body) + RSA verify          {r['raw']:8.1f} us")
    print(
        f"LocalAuthenticator(...).is_authentic()   {r['compat']:8.1f} us  "
        f"{r['compat'] / r['raw']:5.2f}x raw  (target <= 1.6x)"
    )
    print(
        f"reused Authenticator.authenticate        {r['core']:8.1f} us  "
        f"{r['core'] / r['raw']:5.2f}x raw"
    )
    print(f"key fetches while timing                 {r['fetches_during_timing']:8.0f}")
    print(
        f"\n200 x authenticate_event(event, config=cfg): {lam['fetches']:.0f} key fetch(es) "
        f"(target 1), {lam['per_call_us']:.0f} us per call on average, the fetch included"
    )
    line = (
        f"\nMAuth(app_uuid, pem, 'v2') x 50 (first parse included), per call: "
        f"ours {c['ours_us_per_call']:.1f} us"
    )
    if "upstream_us_per_call" in c:
        line += (
            f", upstream 1.10.1 {c['upstream_us_per_call']:.1f} us, "
            f"{c['ours_us_per_call'] / c['upstream_us_per_call']:.2f}x upstream (target <= 1.2x)"
        )
    else:
        line += " (no upstream venv: pass --upstream-python)"
    print(line)


if __name__ == "__main__":
    main()
