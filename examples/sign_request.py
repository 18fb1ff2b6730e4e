"""Sign a request with a throwaway key, print the MAuth headers, and verify them.

Runs as written with no configuration: python3 examples/sign_request.py
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mauth_client import RequestSignable, Signed, Signer
from mauth_client.verifier import verify_v1, verify_v2

APP_UUID = "6b4a0b1c-0b5e-4d5d-9d47-7d2b5c7f6e11"


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()

    signer = Signer(APP_UUID, private_pem, "v1,v2")
    request = RequestSignable(
        method="POST", url="https://api.example.com/studies?page=2", body=b'{"name": "x"}'
    )
    headers = signer.signed_headers(request)
    for name, value in headers.items():
        print(f"{name}: {value[:60]}{'...' if len(value) > 60 else ''}")

    # The receiving side: parse the headers, rebuild the strings, check both signatures.
    signed = Signed.from_headers(headers)
    received = RequestSignable(
        method="POST", url="https://api.example.com/studies?page=2", body=b'{"name": "x"}'
    )
    assert signed.v1 is not None
    assert signed.v2 is not None
    digest = received.v1_hexdigest(APP_UUID, signed.v1.time)
    assert digest is not None
    ok_v1 = verify_v1(key.public_key(), signed.v1.signature, digest)
    ok_v2 = verify_v2(
        key.public_key(), signed.v2.signature, received.v2_string(APP_UUID, signed.v2.time)
    )
    print(f"V1 signature verifies: {ok_v1}; V2 signature verifies: {ok_v2}")
    if not (ok_v1 and ok_v2):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
