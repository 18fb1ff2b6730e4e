"""Core benchmark: signing and verifying against the raw cryptography operations they wrap.

    python3 benchmarks/bench_core.py              # this library vs raw cryptography
    python3 benchmarks/bench_core.py --upstream   # plus upstream mauth-client 1.10.1

Every ratio compares two figures measured in the same run on the same strings, so
ratios hold on noisy machines. Each figure is the best of several rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mauth_client.keys import load_private_key, load_public_key, public_key_pem  # noqa: E402
from mauth_client.signable import RequestSignable  # noqa: E402
from mauth_client.signed import Signed  # noqa: E402
from mauth_client.signer import Signer  # noqa: E402
from mauth_client.verifier import verify_v1, verify_v2  # noqa: E402

APP_UUID = "b0603e5c-c344-488c-83ba-db7e4a6e2a57"
METHOD = "POST"
URL = "https://api.example.com/api/v2/studies/9f3c/subjects.json?per_page=50&page=2"
PATH, _, QUERY = URL.partition("://")[2].partition("/")[2].partition("?")
PATH = "/" + PATH
BODY = json.dumps({"subject": {"name": "Ada", "site": "x" * 900}}).encode()
PKCS1V15 = padding.PKCS1v15()
SHA512 = hashes.SHA512()


def best_of(fns: dict[str, Callable[[], object]], number: int, rounds: int = 9) -> dict[str, float]:
    """Best per-call time in microseconds of each function, their rounds interleaved, so
    that every figure of a ratio saw the same machine conditions."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            results[name].append((time.perf_counter() - start) / number)
    return {name: min(times) * 1e6 for name, times in results.items()}


def make_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return key, pem


def bench_in_memory(key: rsa.RSAPrivateKey, pem: str) -> dict[str, float]:
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    now = int(time.time())
    signable = RequestSignable(method=METHOD, url=URL, body=BODY)
    v1_digest = signable.v1_hexdigest(APP_UUID, now)
    v2_string = signable.v2_string(APP_UUID, now)
    assert v1_digest is not None
    raw_v1_sig = key.sign(v1_digest, PKCS1V15, utils.NoDigestInfo())
    raw_v2_sig = key.sign(v2_string, PKCS1V15, SHA512)

    signers = {v: Signer(APP_UUID, pem, v) for v in ("v1", "v2", "v1,v2")}
    headers = signers["v1,v2"].signed_headers(signable, {"time": now})
    load_public_key(public_pem)  # warm the parsed-key cache: "verifying (key cached)"

    def lib_sign(versions: str) -> Callable[[], object]:
        signer = signers[versions]
        return lambda: signer.signed_headers(RequestSignable(method=METHOD, url=URL, body=BODY))

    def lib_verify(version: int) -> Callable[[], object]:
        def run() -> bool:
            signed = Signed.from_headers(headers)
            received = RequestSignable(method=METHOD, url=URL, body=BODY)
            key_ = load_public_key(public_pem)
            info = signed.v2 if version == 2 else signed.v1
            assert info is not None
            if version == 2:
                ok = verify_v2(
                    key_, info.signature, received.v2_string(info.app_uuid or "", info.time)
                )
            else:
                digest = received.v1_hexdigest(info.app_uuid or "", info.time)
                ok = digest is not None and verify_v1(key_, info.signature, digest)
            assert ok
            return ok

        return run

    def raw_verify_v1() -> None:
        assert public.recover_data_from_signature(raw_v1_sig, PKCS1V15, None) == v1_digest

    figures: dict[str, float] = {}
    figures.update(
        best_of(
            {
                "raw_sign_v1": lambda: key.sign(v1_digest, PKCS1V15, utils.NoDigestInfo()),
                "raw_sign_v2": lambda: key.sign(v2_string, PKCS1V15, SHA512),
                "lib_sign_v1": lib_sign("v1"),
                "lib_sign_v2": lib_sign("v2"),
            },
            100,
        )
    )
    figures.update(
        best_of(
            {
                "raw_sign_v1v2": lambda: (
                    key.sign(v1_digest, PKCS1V15, utils.NoDigestInfo()),
                    key.sign(v2_string, PKCS1V15, SHA512),
                ),
                "lib_sign_v1v2": lib_sign("v1,v2"),
            },
            50,
        )
    )
    figures.update(
        best_of(
            {
                "raw_verify_v1": raw_verify_v1,
                "raw_verify_v2": lambda: public.verify(raw_v2_sig, v2_string, PKCS1V15, SHA512),
                "lib_verify_v1": lib_verify(1),
                "lib_verify_v2": lib_verify(2),
            },
            1000,
        )
    )
    figures.update(bench_authenticate(key, pem, public, raw_v2_sig, v2_string))
    return figures


def bench_authenticate(
    key: rsa.RSAPrivateKey, pem: str, public: rsa.RSAPublicKey, raw_v2_sig: bytes, v2_string: bytes
) -> dict[str, float]:
    """Authenticator.authenticate with a warm key cache, through the local MAuth service's
    LocalKeySource and the KeyHolder seam, as an application would run it."""
    from mauth_client.authenticator import Authenticator
    from mauth_client.testing import LocalMAuthService

    def raw() -> None:  # the irreducible work: hash the body, verify the V2 signature
        hashlib.sha512(BODY).hexdigest()
        public.verify(raw_v2_sig, v2_string, PKCS1V15, SHA512)

    with LocalMAuthService() as service:
        me = service.new_app()
        service.add_app(APP_UUID, public_key_pem(key))
        authenticator = Authenticator.from_config(service.config_for(me))
        runs: dict[str, Callable[[], object]] = {}
        for versions, name in (("v2", "lib_auth_v2"), ("v1", "lib_auth_v1")):
            headers = Signer(APP_UUID, pem, versions).signed_headers(
                RequestSignable(method=METHOD, url=URL, body=BODY)
            )
            authenticator.authenticate(  # warm the key cache
                RequestSignable(method=METHOD, url=URL, body=BODY), Signed.from_headers(headers)
            )

            def run(headers: dict[str, str] = headers) -> None:
                # A server adapter hands over path and query separately, as here.
                authenticator.authenticate(
                    RequestSignable(method=METHOD, path=PATH, query_string=QUERY, body=BODY),
                    Signed.from_headers(headers),
                )

            runs[name] = run
        figures = best_of({"raw_hash_verify_v2": raw, **runs}, 1000)
        assert service.calls("security_tokens") == 1  # every call above hit the cache
    return figures


STREAM_CHILD = r"""
import sys, time, json

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB

sys.path.insert(0, sys.argv[1])
from mauth_client.signer import Signer
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.verifier import verify_v1, verify_v2
from mauth_client.keys import load_private_key
pem, path = open(sys.argv[2]).read(), sys.argv[3]
signer = Signer("app", pem, "v1,v2")
public = load_private_key(pem).public_key()
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
t0 = time.perf_counter()
with open(path, "rb") as f:
    headers = signer.signed_headers(RequestSignable(method="PUT", url="/upload", body=f))
t1 = time.perf_counter()
signed = Signed.from_headers(headers)
with open(path, "rb") as f:
    received = RequestSignable(method="PUT", url="/upload", body=f)
    ok2 = verify_v2(public, signed.v2.signature, received.v2_string("app", signed.v2.time))
    ok1 = verify_v1(public, signed.v1.signature, received.v1_hexdigest("app", signed.v1.time))
t2 = time.perf_counter()
peak = status("VmHWM")
assert ok1 and ok2
print(json.dumps({"sign_s": t1 - t0, "verify_s": t2 - t1, "added_peak_mib": (peak - base) / 1024}))
"""


def bench_stream(pem: str, size_mib: int = 100) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "body.bin"
        chunk = os.urandom(1024 * 1024)
        with data_path.open("wb") as f:
            for _ in range(size_mib):
                f.write(chunk)
        key_path = Path(tmp) / "key.pem"
        key_path.write_text(pem)
        started = time.perf_counter()
        with data_path.open("rb") as f:  # raw SHA-512 of the same bytes, twice (V1 + V2)
            h = hashlib.sha512()
            while block := f.read(1024 * 1024):
                h.update(block)
        raw_hash_s = time.perf_counter() - started
        out = subprocess.run(
            [sys.executable, "-c", STREAM_CHILD, str(HERE.parent), str(key_path), str(data_path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, float] = json.loads(out)
    result["raw_sha512_one_pass_s"] = raw_hash_s
    return result


def bench_upstream(pem: str) -> dict[str, float]:
    venv = HERE / ".upstream-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "mauth-client==1.10.1"], check=True
        )
    public_pem = public_key_pem(load_private_key(pem))
    with tempfile.TemporaryDirectory() as tmp:
        key_path, public_path = Path(tmp) / "key.pem", Path(tmp) / "key.pub.pem"
        key_path.write_text(pem)
        public_path.write_text(public_pem)
        out = subprocess.run(
            [
                str(python),
                str(HERE / "upstream_child.py"),
                str(key_path),
                str(public_path),
                METHOD,
                URL,
                BODY.decode(),
                APP_UUID,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", action="store_true", help="also time mauth-client 1.10.1")
    parser.add_argument("--stream-mib", type=int, default=100)
    args = parser.parse_args()

    key, pem = make_key()
    f = bench_in_memory(key, pem)
    print(f"RSA-2048, body {len(BODY)} bytes, {URL}")
    print(f"{'operation':34} {'us/op':>9} {'vs raw':>8}")
    rows = [
        ("raw sign V1 (NoDigestInfo)", "raw_sign_v1", None),
        ("raw sign V2 (SHA-512)", "raw_sign_v2", None),
        ("signed_headers v1", "lib_sign_v1", f["raw_sign_v1"]),
        ("signed_headers v2", "lib_sign_v2", f["raw_sign_v2"]),
        ("signed_headers v1+v2", "lib_sign_v1v2", f["raw_sign_v1v2"]),
        ("raw verify V1 (recover)", "raw_verify_v1", None),
        ("raw verify V2", "raw_verify_v2", None),
        ("verify V1 (parse+rebuild+check)", "lib_verify_v1", f["raw_verify_v1"]),
        ("verify V2 (parse+rebuild+check)", "lib_verify_v2", f["raw_verify_v2"]),
        ("raw SHA-512(body) + verify V2", "raw_hash_verify_v2", None),
        ("Authenticator.authenticate V2", "lib_auth_v2", f["raw_hash_verify_v2"]),
        ("Authenticator.authenticate V1", "lib_auth_v1", f["raw_hash_verify_v2"]),
    ]
    for label, name, raw in rows:
        ratio = f"{f[name] / raw:7.3f}x" if raw else ""
        print(f"{label:34} {f[name]:9.1f} {ratio:>8}")

    s = bench_stream(pem, args.stream_mib)
    print(
        f"\n{args.stream_mib} MiB streamed file body (v1+v2): sign {s['sign_s']:.3f} s, "
        f"verify both {s['verify_s']:.3f} s, raw one-pass SHA-512 {s['raw_sha512_one_pass_s']:.3f} s, "
        f"added peak RSS {s['added_peak_mib']:.1f} MiB"
    )

    if args.upstream:
        u = bench_upstream(pem)
        print("\nupstream mauth-client 1.10.1, same message:")
        for label, ours, theirs in (
            ("sign v1", f["lib_sign_v1"], u["sign_v1"]),
            ("sign v2", f["lib_sign_v2"], u["sign_v2"]),
            ("verify v1", f["lib_verify_v1"], u["verify_v1"]),
            ("verify v2", f["lib_verify_v2"], u["verify_v2"]),
            ("LocalAuthenticator v1 vs our authenticate", f["lib_auth_v1"], u["verify_v1"]),
            ("LocalAuthenticator v2 vs our authenticate", f["lib_auth_v2"], u["verify_v2"]),
        ):
            print(
                f"{label:10} upstream {theirs:10.1f} us   ours {ours:8.1f} us   {theirs / ours:6.1f}x faster"
            )
    print(
        f"\n(max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
