"""Times upstream mauth-client 1.10.1 on a message; run by bench_core.py inside its own venv.

Prints one JSON line of microseconds per operation. Uses only upstream's public
API; the key holder is given the public key the way existing test suites do.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from mauth_client.authenticator import LocalAuthenticator  # type: ignore[import-not-found]
from mauth_client.key_holder import KeyHolder  # type: ignore[import-not-found]
from mauth_client.signable import RequestSignable  # type: ignore[import-not-found]
from mauth_client.signed import Signed  # type: ignore[import-not-found]
from mauth_client.signer import Signer  # type: ignore[import-not-found]


def best(fn, number, rounds=5):  # type: ignore[no-untyped-def]
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - start) / number)
    return min(results) * 1e6


def main() -> None:
    key_path, public_path, method, url, body, app_uuid = sys.argv[1:7]
    with open(key_path) as f:
        pem = f.read()
    with open(public_path) as f:
        public_pem = f.read()
    KeyHolder.get_public_key = classmethod(lambda cls, app: public_pem)  # the documented seam
    logger = logging.getLogger("upstream")
    logger.disabled = True
    out = {}
    for version in ("v1", "v2"):
        signer = Signer(app_uuid, pem, version)
        out[f"sign_{version}"] = best(
            lambda: signer.signed_headers(RequestSignable(method=method, url=url, body=body)), 20
        )
        headers = signer.signed_headers(RequestSignable(method=method, url=url, body=body))

        def verify() -> None:
            auth = LocalAuthenticator(
                RequestSignable(method=method, url=url, body=body),
                Signed.from_headers(headers),
                logger,
            )
            assert auth.is_authentic()[0]

        out[f"verify_{version}"] = best(verify, 20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
