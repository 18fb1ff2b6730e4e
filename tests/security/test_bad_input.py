"""Issue 10 item 9: lone surrogates and malformed Lambda events fail, never crash.

Receiving: a falsy result with a 4xx status and a message. Signing (``Signer``, the
quoting helpers): :class:`UnableToSignError`. Hypothesis strategies draw from every
code point, lone surrogates included, for each public entry point taking text.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mauth_client.authenticator import Authenticator
from mauth_client.config import redact_url, without_urls
from mauth_client.exceptions import InauthenticError, KeyFormatError, UnableToSignError
from mauth_client.key_source import StaticKeySource
from mauth_client.keys import load_private_key, load_public_key
from mauth_client.lambda_authenticator import LambdaAuthenticator, authenticate_event
from mauth_client.server import RequestGuard
from mauth_client.signable import (
    RequestSignable,
    ResponseSignable,
    encode_query,
    normalize_path,
    split_url,
)
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import generate_identity

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=20)
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Text that surely holds a lone surrogate somewhere.
WITH_SURROGATE = st.tuples(ANY_TEXT, SURROGATE, ANY_TEXT).map("".join)
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

ME = generate_identity()
SIGNER = Signer(ME.app_uuid, ME.private_key, "v1,v2")
AUTHENTICATOR = Authenticator(StaticKeySource({ME.app_uuid: ME.public_key}))


def good_headers(path: str = "/x") -> dict[str, str]:
    return SIGNER.signed_headers(RequestSignable(method="GET", path=path))


# --- signing ----------------------------------------------------------------------------


@EXAMPLES
@given(ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_signer_raises_only_unable_to_sign(path: str, query: str, body: str) -> None:
    for signable in (
        lambda: RequestSignable(method="GET", path="/" + path, query_string=query, body=body),
        lambda: RequestSignable(method="POST", url=f"/{path}?{query}", body=body),
        lambda: ResponseSignable(200, body),
    ):
        with contextlib.suppress(UnableToSignError):
            SIGNER.signed_headers(signable())


@EXAMPLES
@given(WITH_SURROGATE)
def test_lone_surrogates_cannot_be_signed(text: str) -> None:
    with pytest.raises(UnableToSignError):
        SIGNER.signed_headers(RequestSignable(method="POST", url="/x", body=text))
    if not all(0xDC80 <= ord(c) <= 0xDCFF for c in text if 0xD800 <= ord(c) <= 0xDFFF):
        # Not surrogateescape's: no bytes stand for it in a path or query either.
        with pytest.raises(UnableToSignError):
            SIGNER.signed_headers(RequestSignable(method="GET", path="/" + text))
        with pytest.raises(UnableToSignError):
            encode_query("q=" + text)


@EXAMPLES
@given(ANY_TEXT)
def test_quoting_helpers_raise_only_unable_to_sign(text: str) -> None:
    for helper in (encode_query, normalize_path, split_url):
        with contextlib.suppress(UnableToSignError, ValueError):  # split_url: bad URLs
            helper(text)


@EXAMPLES
@given(ANY_TEXT)
def test_text_helpers_never_raise(text: str) -> None:
    assert isinstance(redact_url(text), str) and isinstance(without_urls(text), str)
    assert Signed.from_headers({"MCC-Authentication": text, "X-MWS-Authentication": text})
    for loader in (load_private_key, load_public_key):
        with contextlib.suppress(KeyFormatError):
            loader(text)


# --- receiving --------------------------------------------------------------------------


@EXAMPLES
@given(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_authenticator_and_guard_answer_4xx(path: str, query: str, header: str, body: str) -> None:
    headers = {**good_headers(), "MCC-Authentication": f"MWSV2 {ME.app_uuid}:{header};"}
    ok, status, message = AUTHENTICATOR.is_authentic(
        RequestSignable(method="GET", path="/" + path, query_string=query, body=body),
        Signed.from_headers(headers),
    )
    assert not ok and 400 <= status < 500 and message
    outcome = RequestGuard(AUTHENTICATOR).check("GET", "/" + path, query, headers, body)
    assert not outcome.ok and 400 <= outcome.status < 500 and outcome.message


@EXAMPLES
@given(WITH_SURROGATE)
def test_authentically_signed_headers_with_a_surrogate_target_are_refused(text: str) -> None:
    signable = RequestSignable(method="GET", path="/" + text, query_string="a=" + text)
    with pytest.raises(InauthenticError):
        AUTHENTICATOR.authenticate(signable, Signed.from_headers(good_headers()))


@EXAMPLES
@given(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_lambda_entry_points_answer_4xx(path: str, query: str, header: str, body: str) -> None:
    headers = {"MCC-Authentication": f"MWSV2 {header}:c2ln;", "MCC-Time": header}
    result = LambdaAuthenticator(
        "GET", f"/{path}?{query}", headers, body, authenticator=AUTHENTICATOR
    ).is_authentic()
    assert not result[0] and 400 <= result[1] < 500 and result[2]
    event = {
        "version": "2.0",
        "rawPath": "/" + path,
        "rawQueryString": query,
        "requestContext": {"http": {"method": "GET"}},
        "headers": {"mcc-authentication": headers["MCC-Authentication"], "mcc-time": header},
        "body": body,
    }
    answer = authenticate_event(event, authenticator=AUTHENTICATOR)
    assert not answer.authentic and 400 <= answer.status_code < 500 and answer.message


MALFORMED_EVENTS: list[Any] = [
    None,
    [],
    "GET /",
    42,
    {},
    {"httpMethod": "GET", "headers": None},
    {"httpMethod": "GET", "headers": [("MCC-Authentication", "x")]},
    {"httpMethod": "GET", "body": 5},
    {"httpMethod": "GET", "body": b"bytes"},
    {"httpMethod": "GET", "body": {"a": 1}},
    {"httpMethod": "GET", "isBase64Encoded": True, "body": 5},
    {"httpMethod": "GET", "isBase64Encoded": True, "body": "not base64!"},
    {"httpMethod": "GET", "multiValueHeaders": [1, 2]},
    {"httpMethod": "GET", "multiValueHeaders": {"MCC-Time": "1"}},
    {"httpMethod": "GET", "multiValueHeaders": {"MCC-Time": [None]}},
    {"httpMethod": "GET", "multiValueHeaders": None},
    {"httpMethod": "GET", "queryStringParameters": [1]},
    {"httpMethod": "GET", "multiValueQueryStringParameters": {"a": "not a list"}},
    {"httpMethod": "GET", "multiValueQueryStringParameters": [1]},
    {"httpMethod": "GET", "requestContext": []},
    {"httpMethod": "GET", "requestContext": "x"},
    {"httpMethod": "GET", "path": 5},
    {"httpMethod": 1},
    {"version": "2.0"},
    {"version": "2.0", "requestContext": None},
    {"version": "2.0", "requestContext": {"http": "GET"}},
    {"version": "2.0", "rawPath": 5, "requestContext": {"http": {"method": "GET"}}},
    {"version": "2.0", "rawQueryString": 5, "requestContext": {"http": {"method": "GET"}}},
    {"httpMethod": "GET", "path": "/\ud800", "headers": {"MCC-Time": "\udfff"}},
    {"httpMethod": "GET", "body": "\ud800"},
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=[repr(e)[:60] for e in MALFORMED_EVENTS])
def test_malformed_lambda_events_answer_4xx(event: Any) -> None:
    result = authenticate_event(event, authenticator=AUTHENTICATOR)
    assert not result.authentic and 400 <= result.status_code < 500 and result.message
    assert result.app_uuid is None


@pytest.mark.parametrize(
    ("method", "url", "headers", "body"),
    [
        ("GET", "/x", None, None),
        ("GET", "/x", [("MCC-Time", "1")], None),
        ("GET", "/x", {"MCC-Time": 5}, None),
        (None, "/x", {}, None),
        ("GET", None, {}, None),
        ("GET", "/x", {}, 5),
        ("GET", "/x", {}, {"a": 1}),
        ("GET", "/\ud800?q=\udfff", {"MCC-Authentication": "MWSV2 \ud800:x;"}, "\ud800"),
    ],
)
def test_lambda_authenticator_odd_arguments_answer_4xx(
    method: Any, url: Any, headers: Any, body: Any
) -> None:
    ok, status, message = LambdaAuthenticator(
        method, url, headers, body, authenticator=AUTHENTICATOR
    ).is_authentic()
    assert not ok and 400 <= status < 500 and message


def test_a_text_body_with_a_lone_surrogate_is_inauthentic_not_an_error() -> None:
    """Found by Hypothesis: describing such a message must not raise; checking it is a 401."""
    signable = RequestSignable(method="POST", path="/", body="\ud800")
    ok, status, message = AUTHENTICATOR.is_authentic(signable, Signed.from_headers(good_headers()))
    assert (ok, status) == (False, 401)
    assert "surrogate" in message
