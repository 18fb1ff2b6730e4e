"""One test per rule of mauth-protocol.md section 2 that the vectors do not pin down.

Expected values are written by hand from the protocol text, not computed by the code.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from mauth_client.exceptions import BodyReadError, InvalidMessageError
from mauth_client.signable import (
    RequestSignable,
    ResponseSignable,
    encode_query,
    normalize_path,
    split_url,
)

EMPTY_SHA512 = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
AT = {"app_uuid": "app", "time": 1700000000}


# --- Path normalisation, one rule at a time -------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/./b", "/a/b"),  # step 1: "." segments
        ("/a/b/../c", "/a/c"),  # step 1: ".." segments
        ("/a/b/../..", "/"),  # step 1, and step 4's "unless the result is just /"
        ("/../../a", "/a"),  # ".." above the root stays at the root
        ("//a//b", "/a/b"),  # step 2: runs of "/"
        ("/a///b////c", "/a/b/c"),
        ("/%cf%80", "/%CF%80"),  # step 3: upper-case hex of escapes
        ("/%Cf%8a/x", "/%CF%8A/x"),
        ("/a%2fb", "/a%2Fb"),  # escapes are not decoded
        ("/caf\u00e9", "/caf\u00e9"),  # nothing is encoded either
        ("/100%", "/100%"),  # a lone "%" is left alone
        ("/%zz", "/%zz"),
        ("/a/b/", "/a/b/"),  # step 4: trailing "/" kept
        ("/a/b/.", "/a/b/"),  # step 4: "/." counts as trailing "/"
        ("/a/b/c/..", "/a/b/"),  # step 4: "/.." too
        ("/", "/"),
        ("", "/"),  # step 5: bare host
        ("/.hidden/..x", "/.hidden/..x"),  # dot-prefixed names are ordinary segments
        # Step 1 before step 2 (issue 9, as the Ruby client and RFC 3986 5.2.4 do): an
        # empty segment is a segment, so ".." after "//" removes the empty one.
        ("/a//../b", "/a/b"),  # empty segment before ".."
        ("/a//./b", "/a/b"),  # empty segment before "."
        ("/a/..//b", "/b"),  # empty segment after ".."
        ("/a/.//b", "/a/b"),  # empty segment after "."
        ("/a//b/../../c", "/a/c"),  # ".." twice: removes "b", then the empty segment
        ("//../a", "/a"),
        ("/a/b//..", "/a/b/"),  # step 4 after an empty segment
        ("/a/b/..//", "/a/"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


# --- Query encoding, one step at a time -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),  # step 3: sorted
        ("a=b=c", "a=b%3Dc"),  # step 1: split on the first "="
        ("flag", "flag="),  # step 1 and 5: no "=" means an empty value
        ("a=", "a="),
        ("a=%41", "a=A"),  # step 2: decoded, then step 4: A is unreserved
        ("a=x+y", "a=x%20y"),  # step 2: "+" is a space; step 4: space is %20
        ("a=x%20y", "a=x%20y"),
        ("a=x%2By", "a=x%2By"),  # a decoded "+" is re-encoded
        ("p=/a/b", "p=%2Fa%2Fb"),  # step 4: "/" becomes %2F (the Ruby rule)
        ("s=*", "s=%2A"),
        ("t=~&u=%7e", "t=~&u=~"),  # "~" stays bare
        ("k=-._", "k=-._"),
        ("v=%e2%82%ac", "v=%E2%82%AC"),  # UTF-8, upper-case hex
        ("v=\u20ac", "v=%E2%82%AC"),  # a raw non-ASCII value is encoded as UTF-8
        ("c=1&C=1&\u00b1=1", "C=1&c=1&%C2%B1=1"),  # step 3: code point order
        ("a=2&a=10&a=1", "a=1&a=10&a=2"),  # repeated keys stay, sorted by value
        ("b=1&a=2&a=1", "a=1&a=2&b=1"),  # key first, then value
        ("a=1&", "a=1"),  # a trailing empty part is dropped (Ruby's split)
        ("a=1&&b=2", "=&a=1&b=2"),  # an inner empty part is an empty key and value
        ("bad=%zz", "bad=%25zz"),  # an invalid escape is kept as text, then encoded
        ("x=%ff", "x=%FF"),  # a byte that is not UTF-8 survives unchanged
    ],
)
def test_encode_query(query: str, expected: str) -> None:
    assert encode_query(query) == expected


# --- URL splitting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("https://h.example:8443/a/b?x=1#frag", "/a/b", "x=1"),
        ("https://h.example", "/", ""),  # step 5: bare host signs "/"
        ("https://h.example?x=1", "/", "x=1"),
        ("/a//b?x=1", "/a//b", "x=1"),  # origin form; "//" is not a host here
        ("//a/b", "//a/b", ""),
        ("/p#frag?notquery", "/p", ""),
    ],
)
def test_split_url(url: str, path: str, query: str) -> None:
    assert split_url(url) == (path, query)


def test_v1_signs_the_path_as_sent_and_no_query() -> None:
    signable = RequestSignable(method="GET", url="https://h/a/./b//c?z=1")
    assert signable.string_to_sign_v1(AT) == b"GET\n/a/./b//c\n\napp\n1700000000"


def test_v2_request_string_has_six_lines_and_ends_in_lf_without_query() -> None:
    signed = RequestSignable(method="GET", url="https://h/a").string_to_sign_v2(AT)
    assert signed == f"GET\n/a\n{EMPTY_SHA512}\napp\n1700000000\n".encode()


def test_v2_request_string_normalises_and_encodes() -> None:
    signable = RequestSignable(method="PUT", url="https://h/a/../b%2f?y=%2a&x=a+b", body=b"hi")
    body_hex = hashlib.sha512(b"hi").hexdigest()
    assert signable.string_to_sign_v2(AT) == (
        f"PUT\n/b%2F\n{body_hex}\napp\n1700000000\nx=a%20b&y=%2A".encode()
    )


def test_response_strings() -> None:
    signable = ResponseSignable(201, b"\x00\xffdata")
    assert signable.string_to_sign_v1(AT) == b"201\n\x00\xffdata\napp\n1700000000"
    body_hex = hashlib.sha512(b"\x00\xffdata").hexdigest()
    assert signable.string_to_sign_v2(AT) == f"201\n{body_hex}\napp\n1700000000".encode()


# --- Bodies ---------------------------------------------------------------------------


def test_no_body_and_empty_body_sign_the_same() -> None:
    none = RequestSignable(method="POST", url="/x", body=None)
    empty = RequestSignable(method="POST", url="/x", body=b"")
    assert (
        none.string_to_sign_v1(AT) == empty.string_to_sign_v1(AT) == b"POST\n/x\n\napp\n1700000000"
    )
    assert none.body_hexdigest() == empty.body_hexdigest() == EMPTY_SHA512


def test_str_body_is_utf8() -> None:
    signable = RequestSignable(method="POST", url="/x", body="\u00e9")
    assert signable.string_to_sign_v1(AT) == b"POST\n/x\n\xc3\xa9\napp\n1700000000"


def test_binary_body_goes_in_unchanged() -> None:
    body = bytes(range(256))
    signable = RequestSignable(method="POST", url="/x", body=body)
    assert signable.string_to_sign_v1(AT) == b"POST\n/x\n" + body + b"\napp\n1700000000"
    assert signable.body_hexdigest() == hashlib.sha512(body).hexdigest()


@pytest.mark.parametrize(
    "make_stream",
    [
        lambda data: io.BytesIO(data),
        lambda data: iter([data[:3], bytearray(data[3:7]), memoryview(data[7:])]),
        lambda data: (chunk for chunk in [data]),
    ],
    ids=["file", "iterable-of-chunks", "generator"],
)
def test_streamed_bodies_hash_like_bytes(make_stream: object) -> None:
    data = b"0123456789" * 1000
    stream = make_stream(data)  # type: ignore[operator]
    expected_v1 = hashlib.sha512(b"POST\n/x\n" + data + b"\napp\n5").hexdigest().encode()
    signable = RequestSignable(method="POST", url="/x", body=stream)
    assert signable.body_hexdigest() == hashlib.sha512(data).hexdigest()
    assert signable.v1_hexdigest("app", 5) == expected_v1


def test_seekable_stream_is_rewound_after_hashing() -> None:
    stream = io.BytesIO(b"prefix-ignored|payload")
    stream.seek(15)
    RequestSignable(method="POST", url="/x", body=stream).body_hexdigest()
    assert stream.tell() == 15
    assert stream.read() == b"payload"


class _FailingStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise OSError("disk on fire")


def test_stream_that_raises_gives_body_read_error() -> None:
    signable = RequestSignable(method="POST", url="/x", body=_FailingStream())
    with pytest.raises(BodyReadError, match="reading the body failed: OSError") as info:
        signable.body_hexdigest()
    assert isinstance(info.value.__cause__, OSError)


def test_generator_that_raises_gives_body_read_error() -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"a"
        raise ValueError("boom")

    with pytest.raises(BodyReadError):
        RequestSignable(method="POST", url="/x", body=chunks()).body_hexdigest()


def test_stream_yielding_wrong_type_gives_body_read_error() -> None:
    with pytest.raises(BodyReadError, match="yielded int"):
        RequestSignable(method="POST", url="/x", body=iter([1, 2])).body_hexdigest()


def test_unsupported_body_type() -> None:
    with pytest.raises(BodyReadError, match="unsupported body type"):
        RequestSignable(method="POST", url="/x", body=12.5).body_hexdigest()  # type: ignore[arg-type]


def test_consumed_generator_cannot_be_materialised_later() -> None:
    signable = RequestSignable(method="POST", url="/x", body=iter([b"abc"]))
    signable.body_hexdigest()
    with pytest.raises(InvalidMessageError, match="already consumed"):
        signable.string_to_sign_v1(AT)


# --- Bad descriptions of messages ------------------------------------------------------


@pytest.mark.parametrize("status", [99, 1000, "2OO", "", True, None, 20.0])
def test_bad_status_codes(status: object) -> None:
    with pytest.raises(InvalidMessageError, match="three-digit"):
        ResponseSignable(status)  # type: ignore[arg-type]


@pytest.mark.parametrize("time", ["12a", "-5", "1.5", 1.5, None, True, "\u0661\u0662"])
def test_bad_times(time: object) -> None:
    signable = RequestSignable(method="GET", url="/")
    with pytest.raises(InvalidMessageError):
        signable.string_to_sign_v2({"app_uuid": "a", "time": time})


def test_missing_attributes() -> None:
    with pytest.raises(InvalidMessageError, match="'app_uuid'"):
        RequestSignable(method="GET", url="/").string_to_sign_v1({"time": 1})


@pytest.mark.parametrize("url", ["http://[::1", 5])
def test_bad_urls(url: object) -> None:
    with pytest.raises(InvalidMessageError, match="URL"):
        RequestSignable(method="GET", url=url)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "query"), [(5, ""), ("/", 5)])
def test_bad_path_or_query_types(path: object, query: object) -> None:
    with pytest.raises(InvalidMessageError, match="must be str"):
        RequestSignable(method="GET", path=path, query_string=query)  # type: ignore[arg-type]


def test_bad_method_type() -> None:
    with pytest.raises(InvalidMessageError, match="method must be str"):
        RequestSignable(method=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["", "GE T", "GET\n", "G:ET\r"])
def test_check_rejects_bad_methods(method: str) -> None:
    with pytest.raises(InvalidMessageError, match="method"):
        RequestSignable(method=method, url="/").check()


def test_check_rejects_control_characters_in_the_url() -> None:
    with pytest.raises(InvalidMessageError, match="control characters"):
        RequestSignable(method="GET", url="/a\nb").check()


# --- Section 4.6 variants -------------------------------------------------------------


def test_variants_reencode_path_and_query() -> None:
    signable = RequestSignable(method="GET", path="/a b/c#d", query_string="k=v w&x=/")
    variants = [(v.path, v.query_string) for v in signable.variants()]  # type: ignore[attr-defined]
    assert variants == [
        ("%2Fa+b%2Fc%23d", "k%3Dv+w%26x%3D%2F"),
        ("/a+b/c#d", "k=v+w&x=%2F"),
    ]


def test_variants_skip_duplicates_of_the_original() -> None:
    assert list(RequestSignable(method="GET", path="abc", query_string="").variants()) == []
