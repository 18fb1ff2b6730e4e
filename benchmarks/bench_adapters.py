"""WSGI middleware overhead: the same app bare and wrapped, in one run, with a cached key.

    python3 benchmarks/bench_adapters.py

The target: (wrapped - bare) per request at most 1.5x the raw RSA verify it contains.
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

from bench_core import APP_UUID, BODY, METHOD, PATH, PKCS1V15, QUERY, SHA512, best_of, make_key  # noqa: E402

from mauth_client.keys import public_key_pem  # noqa: E402
from mauth_client.middlewares import MAuthWSGIMiddleware  # noqa: E402
from mauth_client.signable import RequestSignable  # noqa: E402
from mauth_client.signer import Signer  # noqa: E402
from mauth_client.testing import LocalMAuthService  # noqa: E402
from mauth_client.verifier import decode_signature  # noqa: E402


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


def main() -> None:
    key, pem = make_key()
    public = key.public_key()
    with LocalMAuthService() as service:
        me = service.new_app()
        service.add_app(APP_UUID, public_key_pem(key))
        wrapped = MAuthWSGIMiddleware(bare_app, config=service.config_for(me))
        print(f"RSA-2048, {METHOD} {PATH}?{QUERY}, body {len(BODY)} bytes")
        for versions in ("v2", "v1"):
            headers = Signer(APP_UUID, pem, versions).signed_headers(
                RequestSignable(method=METHOD, path=PATH, query_string=QUERY, body=BODY)
            )
            http = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}

            def environ(http: dict[str, str] = http) -> dict[str, Any]:
                return {
                    "REQUEST_METHOD": METHOD,
                    "PATH_INFO": PATH,
                    "QUERY_STRING": QUERY,
                    "RAW_URI": f"{PATH}?{QUERY}",
                    "CONTENT_LENGTH": str(len(BODY)),
                    "wsgi.input": io.BytesIO(BODY),
                    **http,
                }

            def call(app: Any) -> Callable[[], None]:
                def run() -> None:
                    statuses: list[str] = []
                    b"".join(app(environ(), lambda s, h, *a: statuses.append(s)))
                    assert statuses[0].startswith("200"), statuses

                return run

            call(wrapped)()  # warm the key cache
            signed_info = headers.get("MCC-Authentication") or headers["X-MWS-Authentication"]
            raw_sig = decode_signature(signed_info.split(":", 1)[1].rstrip(";"))
            assert raw_sig is not None
            signable = RequestSignable(method=METHOD, path=PATH, query_string=QUERY, body=BODY)
            when = headers.get("MCC-Time") or headers["X-MWS-Time"]
            if versions == "v2":
                data = signable.v2_string(APP_UUID, when)

                def raw_verify() -> object:
                    return public.verify(raw_sig, data, PKCS1V15, SHA512)
            else:
                digest = signable.v1_hexdigest(APP_UUID, when)

                def raw_verify() -> object:
                    return public.recover_data_from_signature(raw_sig, PKCS1V15, None) == digest

            times = best_of({"raw": raw_verify, "bare": call(bare_app), "mw": call(wrapped)}, 1000)
            raw, bare, mw = times["raw"], times["bare"], times["mw"]
            overhead = mw - bare
            print(
                f"{versions}: bare app {bare:6.1f} us, with middleware {mw:6.1f} us, overhead "
                f"{overhead:5.1f} us = {overhead / raw:.2f}x the raw RSA verify ({raw:.1f} us)"
            )
        assert service.calls("security_tokens") == 1


if __name__ == "__main__":
    start = time.perf_counter()
    main()
