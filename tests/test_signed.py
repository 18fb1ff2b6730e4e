"""Header parsing: anchored patterns, any header case, and garbage that never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mauth_client.consts import MWSV2_AUTH_PATTERN, X_MWS_AUTH_PATTERN
from mauth_client.signed import Signed
from mauth_client.verifier import decode_signature


def test_v1_only() -> None:
    signed = Signed.from_headers({"x-mws-authentication": "MWS app-1:c2ln", "X-Mws-Time": "10"})
    assert signed.protocol_version() == 1
    assert (signed.token, signed.app_uuid, signed.signature) == ("MWS", "app-1", "c2ln")
    assert signed.x_mws_time == "10"
    assert signed.v2 is None


def test_v2_wins_when_both_present() -> None:
    signed = Signed.from_headers(
        [
            ("X-MWS-Authentication", "MWS a1:s1"),
            ("X-MWS-Time", "1"),
            (b"mcc-authentication", b"MWSV2 a2:s2;"),
            (b"MCC-TIME", b"2"),
        ]
    )
    assert signed.protocol_version() == 2
    assert (signed.token, signed.app_uuid, signed.signature) == ("MWSV2", "a2", "s2")
    assert signed.v1 is not None and signed.v1.app_uuid == "a1" and signed.v1.time == "1"
    assert signed.v2 is not None and signed.v2.time == "2"


def test_surrounding_whitespace_is_ignored() -> None:
    signed = Signed.from_headers({"MCC-Authentication": "  MWSV2 a:s;  ", "MCC-Time": " 5 "})
    assert signed.v2 is not None and signed.v2.usable and signed.v2.time == "5"


def test_blank_v2_header_falls_to_v1() -> None:
    signed = Signed.from_headers({"MCC-Authentication": "   ", "X-MWS-Authentication": "MWS a:s"})
    assert signed.protocol_version() == 1


def test_nothing_present() -> None:
    signed = Signed.from_headers({"Content-Type": "text/plain"})
    assert signed.protocol_version() is None
    assert signed.token == signed.app_uuid == signed.signature == ""  # as upstream (issue 9)


@pytest.mark.parametrize(
    "value",
    [
        "MWSV2 a:s",  # no trailing ";"
        "MWSV2 a:s;\nX",  # an embedded newline
        "MWSV2 a:s;;x",
        "MWSV2 a:b:c;",  # extra colon
        "MWSV2 :s;",
        "MWSV2 a:;",
        "MWS a:s;",  # V1 token in the V2 header
        "xMWSV2 a:s;",
        "\x00\xff",
    ],
)
def test_unusable_v2_values(value: str) -> None:
    signed = Signed(mcc_authentication=value, mcc_time="1")
    assert signed.protocol_version() == 2  # non-blank: the message is V2 (section 4.1)
    assert signed.v2 is not None and not signed.v2.usable
    assert signed.signature == ""  # as upstream: "" when absent (issue 9)


def test_unusable_value_still_names_token_and_app_for_messages() -> None:
    signed = Signed(mcc_authentication="MWS app-9:sig;")
    assert signed.v2 is not None
    assert (signed.v2.token, signed.v2.app_uuid, signed.v2.usable) == ("MWS", "app-9", False)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("MWS a:s", ("MWS", "a", "s")),
        ("MWS   a:s", ("MWS", "a", "s")),  # any number of spaces in V1
        ("MWSa:s", ("MWS", "a", "s")),  # the spec's pattern backtracks to this reading
        ("FOO a:s", ("FOO", "a", "s")),  # parses; the token check rejects it later
    ],
)
def test_v1_pattern(value: str, parsed: tuple[str | None, ...]) -> None:
    signed = Signed(x_mws_authentication=value)
    assert signed.v1 is not None and signed.v1.usable
    assert (signed.v1.token, signed.v1.app_uuid, signed.v1.signature) == parsed


def test_patterns_are_anchored_at_both_ends() -> None:
    assert MWSV2_AUTH_PATTERN.match("MWSV2 a:s;") is not None
    assert MWSV2_AUTH_PATTERN.match("MWSV2 a:s;\n") is None  # "$" alone would accept it
    assert MWSV2_AUTH_PATTERN.match(" MWSV2 a:s;") is None
    # V1's "[^:]+" takes the newline into the signature, which strict base64 then refuses.
    match = X_MWS_AUTH_PATTERN.match("MWS a:c2ln\n")
    assert match is not None and match.group(3) == "c2ln\n"
    assert decode_signature(match.group(3)) is None
    assert X_MWS_AUTH_PATTERN.match("MWS a:s:t") is None


def test_v2_pattern_takes_a_second_space_into_the_app_uuid() -> None:
    # "exactly one space": a second one becomes part of the app UUID, which then
    # matches no app, so the message cannot authenticate.
    signed = Signed(mcc_authentication="MWSV2  a:s;")
    assert signed.v2 is not None and signed.v2.app_uuid == " a"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        [],
        "garbage",
        [("only-one",)],
        {1: 2, None: "x"},
        [(b"\xff", b"\xff")],
        {"X-MWS-Authentication": 12, "MCC-Authentication": None},
        [1, 2, 3],
    ],
)
def test_garbage_headers_never_raise(headers: object) -> None:
    signed = Signed.from_headers(headers)  # type: ignore[arg-type]
    assert signed.protocol_version() is None


def test_mixed_case_dict_keeps_both_versions() -> None:
    signed = Signed.from_headers(
        {
            "MCC-Authentication": "MWSV2 a:s;",
            "MCC-Time": "2",
            "x-mws-authentication": "MWS a:t",
            "x-mws-time": "1",
        }
    )
    assert signed.v1 is not None and signed.v1.signature == "t" and signed.v1.time == "1"
    assert signed.v2 is not None and signed.v2.signature == "s" and signed.v2.time == "2"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="MWSV2 :;ab=\n", max_size=16), st.sampled_from(["", "MWSV2 ", "MWSV2 a:b"]))
def test_v2_parse_agrees_with_the_anchored_pattern(tail: str, head: str) -> None:
    value = head + tail
    match = MWSV2_AUTH_PATTERN.match(value)
    info = Signed(mcc_authentication=value).v2
    stripped = value.strip()
    if stripped != value:  # header values are stripped first; compare on that
        match = MWSV2_AUTH_PATTERN.match(stripped)
    if not stripped:
        assert info is None
        return
    assert info is not None
    assert info.usable == (match is not None)
    if match is not None:
        assert (info.token, info.app_uuid, info.signature) == match.groups()


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="MWS :ab\n", max_size=14), st.sampled_from(["", "MWS ", "MWS  ", "MWS a:b"])
)
def test_v1_parse_agrees_with_the_anchored_pattern(tail: str, head: str) -> None:
    stripped = (head + tail).strip()
    info = Signed(x_mws_authentication=head + tail).v1
    if not stripped:
        assert info is None
        return
    match = X_MWS_AUTH_PATTERN.match(stripped)
    assert info is not None
    assert info.usable == (match is not None)
    if match is not None:
        assert (info.token, info.app_uuid, info.signature) == match.groups()
