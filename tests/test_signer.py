"""The signer: versions, times, streams, bad input; checked with raw cryptography."""

from __future__ import annotations

import base64
import hashlib
import io
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from mauth_client.exceptions import (
    BodyReadError,
    ConfigurationError,
    InvalidMessageError,
    KeyFormatError,
    UnableToSignError,
)
from mauth_client.signable import RequestSignable, ResponseSignable
from mauth_client.signer import Signer, parse_sign_versions


def _public(private_pem: str):  # type: ignore[no-untyped-def]
    return serialization.load_pem_private_key(private_pem.encode(), None).public_key()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("v1", ("v1",)),
        ("v2", ("v2",)),
        ("v1,v2", ("v1", "v2")),
        (" V2 , v1 ", ("v1", "v2")),
        (["v2", "v1", "v2"], ("v1", "v2")),
        (None, ("v1",)),  # upstream's default
        ("v1,,", ("v1",)),  # empty items are skipped, as upstream did (issue 9)
    ],
)
def test_parse_sign_versions(given: object, expected: tuple[str, ...]) -> None:
    assert parse_sign_versions(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["v3", "", ",,", "1"])
def test_bad_sign_versions(given: str) -> None:
    with pytest.raises(ConfigurationError, match="MAuth sign version"):
        parse_sign_versions(given)


@pytest.mark.parametrize("app_uuid", ["", None, "a:b", "a b", "a\nb"])
def test_bad_app_uuids(app_uuid: object, key_pair: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="app UUID"):
        Signer(app_uuid, key_pair[0])  # type: ignore[arg-type]


def test_bad_key_is_a_value_error(key_pair: tuple[str, str]) -> None:
    with pytest.raises(KeyFormatError):
        Signer("app", "nope")
    with pytest.raises(ValueError):
        Signer("app", key_pair[1])  # a public key


def test_headers_per_version(key_pair: tuple[str, str]) -> None:
    signable = RequestSignable(method="GET", url="/x")
    v1 = Signer("app", key_pair[0], "v1").signed_headers(signable, {"time": 7})
    assert set(v1) == {"X-MWS-Authentication", "X-MWS-Time"}
    assert v1["X-MWS-Authentication"].startswith("MWS app:") and v1["X-MWS-Time"] == "7"
    v2 = Signer("app", key_pair[0], "v2").signed_headers(signable, {"time": 7})
    assert set(v2) == {"MCC-Authentication", "MCC-Time"}
    assert v2["MCC-Authentication"].startswith("MWSV2 app:") and v2["MCC-Authentication"].endswith(
        ";"
    )
    both = Signer("app", key_pair[0], "v1,v2").signed_headers(signable, {"time": 7})
    assert both == {**v1, **v2}


def test_v2_signature_verifies_with_raw_cryptography(key_pair: tuple[str, str]) -> None:
    body = b'{"a": 1}'
    headers = Signer("app", key_pair[0], "v2").signed_headers(
        RequestSignable(method="POST", url="https://h/p/../q?b=2&a=1", body=body), {"time": 99}
    )
    signature = base64.b64decode(headers["MCC-Authentication"][len("MWSV2 app:") : -1])
    expected = f"POST\n/q\n{hashlib.sha512(body).hexdigest()}\napp\n99\na=1&b=2".encode()
    _public(key_pair[0]).verify(signature, expected, padding.PKCS1v15(), hashes.SHA512())


def test_v1_signature_recovers_the_hex_digest(key_pair: tuple[str, str]) -> None:
    headers = Signer("app", key_pair[0], "v1").signed_headers(
        ResponseSignable(404, b"gone"), {"time": 99}
    )
    signature = base64.b64decode(headers["X-MWS-Authentication"][len("MWS app:") :])
    recovered = _public(key_pair[0]).recover_data_from_signature(
        signature, padding.PKCS1v15(), None
    )
    assert recovered == hashlib.sha512(b"404\ngone\napp\n99").hexdigest().encode()


def test_default_time_is_now(key_pair: tuple[str, str]) -> None:
    before = int(time.time())
    headers = Signer("app", key_pair[0], "v1,v2").signed_headers(
        RequestSignable(method="GET", url="/")
    )
    after = int(time.time())
    assert before <= int(headers["X-MWS-Time"]) <= after
    assert headers["X-MWS-Time"] == headers["MCC-Time"]


@pytest.mark.parametrize("bad_time", ["soon", -1, 1.5, True])
def test_bad_signing_time(bad_time: object, key_pair: tuple[str, str]) -> None:
    with pytest.raises(UnableToSignError, match="epoch seconds"):
        Signer("app", key_pair[0]).signed_headers(
            RequestSignable(method="GET", url="/"), {"time": bad_time}
        )


def test_streamed_body_signs_like_bytes_and_is_read_once(key_pair: tuple[str, str]) -> None:
    data = bytes(range(256)) * 5000
    reads = []

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 4096):
            reads.append(i)
            yield data[i : i + 4096]

    signer = Signer("app", key_pair[0], "v1,v2")
    streamed = signer.signed_headers(
        RequestSignable(method="PUT", url="/f", body=chunks()), {"time": 3}
    )
    in_memory = signer.signed_headers(
        RequestSignable(method="PUT", url="/f", body=data), {"time": 3}
    )
    assert streamed == in_memory
    assert len(reads) == len(range(0, len(data), 4096))  # one pass for both versions


def test_file_body_is_rewound_so_it_can_be_sent(key_pair: tuple[str, str]) -> None:
    stream = io.BytesIO(b"payload")
    Signer("app", key_pair[0], "v1,v2").signed_headers(
        RequestSignable(method="PUT", url="/f", body=stream)
    )
    assert stream.read() == b"payload"


def test_stream_failure_while_signing(key_pair: tuple[str, str]) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"x"
        raise ConnectionResetError("gone")

    with pytest.raises(BodyReadError) as info:
        Signer("app", key_pair[0], "v2").signed_headers(
            RequestSignable(method="PUT", url="/f", body=chunks())
        )
    assert isinstance(info.value, UnableToSignError)


@pytest.mark.parametrize(
    "signable",
    [
        lambda: RequestSignable(method="G ET", url="/"),
        lambda: RequestSignable(method="GET", url="/a\r\nX-Injected: 1"),
    ],
)
def test_unsignable_requests(signable: object, key_pair: tuple[str, str]) -> None:
    with pytest.raises(InvalidMessageError):
        Signer("app", key_pair[0]).signed_headers(signable())  # type: ignore[operator]


def test_not_a_signable(key_pair: tuple[str, str]) -> None:
    with pytest.raises(UnableToSignError, match="RequestSignable"):
        Signer("app", key_pair[0]).signed_headers("GET /")  # type: ignore[arg-type]


def test_repr_shows_no_key(key_pair: tuple[str, str]) -> None:
    text = repr(Signer("app", key_pair[0], "v2"))
    assert text == "Signer(app_uuid='app', sign_versions='v2')"


def test_signature_methods_accept_text(key_pair: tuple[str, str]) -> None:
    signer = Signer("app", key_pair[0])
    assert signer.signature_v2("abc") == signer.signature_v2(b"abc")
    assert signer.signature_v1("abc") == signer.signature_v1(b"abc")
