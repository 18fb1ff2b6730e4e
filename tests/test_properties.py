"""Property-based tests: sign then verify succeeds; any single change makes it fail."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mauth_client.keys import load_private_key
from mauth_client.signable import RequestSignable, normalize_path
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.verifier import verify_v1, verify_v2

from .conftest import new_key_pair

PRIVATE_PEM, _ = new_key_pair()
SIGNER = Signer("prop-app", PRIVATE_PEM, "v1,v2")
PUBLIC = load_private_key(PRIVATE_PEM).public_key()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Printable text including unicode, reserved characters and percent signs; no control
# characters (the signer refuses those in URLs) and no surrogates.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12)
SEGMENT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), max_size=8
)


@dataclass(frozen=True)
class Message:
    method: str
    path: str
    query: str
    body: bytes
    time: int


@st.composite
def queries(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(TEXT, TEXT), max_size=5))
    repeated = draw(
        st.lists(st.sampled_from(["k=1", "k=2", "K=0", "k=", "flag", "a=b=c"]), max_size=3)
    )
    parts = [f"{k}={v}" for k, v in pairs] + repeated
    return "&".join(draw(st.permutations(parts)))


MESSAGES = st.builds(
    Message,
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    path=st.lists(SEGMENT, max_size=5).map(lambda segments: "/" + "/".join(segments)),
    query=queries(),
    body=st.binary(max_size=300),
    time=st.integers(min_value=0, max_value=2**40),
)


def _signable(message: Message, app: str = "prop-app") -> RequestSignable:
    return RequestSignable(
        method=message.method, path=message.path, query_string=message.query, body=message.body
    )


def _verifies(headers: dict[str, str], message: Message) -> tuple[bool, bool]:
    signed = Signed.from_headers(headers)
    assert signed.v1 is not None and signed.v2 is not None
    assert signed.v1.usable and signed.v2.usable
    signable = _signable(message)
    digest = signable.v1_hexdigest(signed.v1.app_uuid or "", signed.v1.time)
    assert digest is not None
    v1 = verify_v1(PUBLIC, signed.v1.signature, digest)
    v2 = verify_v2(
        PUBLIC, signed.v2.signature, signable.v2_string(signed.v2.app_uuid or "", signed.v2.time)
    )
    return v1, v2


@SETTINGS
@given(MESSAGES)
def test_sign_then_verify(message: Message) -> None:
    headers = SIGNER.signed_headers(_signable(message), {"time": message.time})
    assert _verifies(headers, message) == (True, True)


def _flip(text: str, index: int) -> str:
    """Change one character to a different letter (never only its case)."""
    index %= len(text)
    replacement = "q" if text[index].lower() != "q" else "z"
    return text[:index] + replacement + text[index + 1 :]


@SETTINGS
@given(
    MESSAGES, st.integers(min_value=0), st.sampled_from(["body", "method", "time", "path", "query"])
)
def test_any_single_change_fails(message: Message, index: int, field: str) -> None:
    headers = SIGNER.signed_headers(_signable(message), {"time": message.time})
    if field == "body":
        body = bytearray(message.body or b"\x00")
        if message.body:
            body[index % len(body)] ^= 0x01
        tampered = replace(message, body=bytes(body))
    elif field == "method":
        tampered = replace(message, method="GET" if message.method != "GET" else "PUT")
    elif field == "time":  # the receiver reads the time from the headers
        tampered = message
        headers["X-MWS-Time"] = headers["MCC-Time"] = str(message.time + 1)
    elif field == "path":
        tampered = replace(
            message,
            path=message.path + "x" if len(message.path) < 2 else _flip(message.path, index),
        )
    else:
        tampered = replace(message, query=message.query + "&zz=1")
    v1, v2 = _verifies(headers, tampered)
    # V1 covers method, path, body and time (not the query); V2 covers them all but
    # signs the *normalised* path, which a change to a dot segment may leave alone.
    assert v1 is (field == "query" or (field == "path" and tampered.path == message.path))
    path_same = normalize_path(tampered.path) == normalize_path(message.path)
    assert v2 is (field == "path" and path_same)


@SETTINGS
@given(MESSAGES, st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_changing_any_byte_of_the_v2_string_fails(message: Message, index: int, delta: int) -> None:
    signable = _signable(message)
    headers = SIGNER.signed_headers_v2(signable, {"time": message.time})
    string = bytearray(signable.v2_string("prop-app", message.time))
    string[index % len(string)] = (string[index % len(string)] + delta) % 256
    signature = Signed.from_headers(headers).signature
    assert not verify_v2(PUBLIC, signature, bytes(string))


@SETTINGS
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0))
def test_changing_any_byte_of_a_signature_fails(body: bytes, index: int) -> None:
    message = Message("POST", "/x", "", body, 1)
    headers = SIGNER.signed_headers(_signable(message), {"time": 1})
    signed = Signed.from_headers(headers)
    assert signed.v1 is not None and signed.v2 is not None
    for info, check in ((signed.v1, "v1"), (signed.v2, "v2")):
        raw = bytearray(base64.b64decode(info.signature or ""))
        raw[index % len(raw)] ^= 0x80
        forged = base64.b64encode(bytes(raw)).decode()
        signable = _signable(message)
        if check == "v1":
            digest = signable.v1_hexdigest("prop-app", 1)
            assert digest is not None and not verify_v1(PUBLIC, forged, digest)
        else:
            assert not verify_v2(PUBLIC, forged, signable.v2_string("prop-app", 1))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aB0=&.-_~%2F+", max_size=24))
def test_query_fast_paths_agree_with_the_general_path(query: str) -> None:
    from mauth_client.signable import _encode_query_parts, encode_query

    parts = query.split("&")
    while parts and not parts[-1]:
        parts.pop()
    assert encode_query(query) == _encode_query_parts(parts)
