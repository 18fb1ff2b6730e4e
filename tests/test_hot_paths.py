"""The shortcuts the request paths take for speed give the same answers as the long way.

Each shortcut is checked against an independent oracle (urllib, json, the regular
expression, a plain constructor call), and the failure path against its promises: no
reference cycles left per failed request, one WARNING whose record honours the
logger's own settings.
"""

from __future__ import annotations

import gc
import json
import logging
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mauth_client import signable as signable_module
from mauth_client.authenticator import Authenticator, is_uuid_shaped
from mauth_client.exceptions import InauthenticError, InvalidMessageError
from mauth_client.key_source import StaticKeySource
from mauth_client.server import error_body
from mauth_client.signable import (
    RequestSignable,
    encode_query,
    form_encode,
    normalize_path,
    v2_target,
    variant_targets,
)
from mauth_client.signed import Signed
from mauth_client.signer import Signer

from .conftest import new_key_pair

APP = "0f5a3c0e-6c2a-4b8e-9d7f-2b1c3d4e5f60"
PRIVATE, PUBLIC = new_key_pair()
# Targets made mostly of the characters the shortcuts look for, plus anything else.
TARGET = st.text(
    st.one_of(st.sampled_from("/=&#%+ ~._-aZ09"), st.characters(blacklist_categories=("Cs",))),
    max_size=16,
)


@settings(max_examples=300, deadline=None)
@given(TARGET, st.sampled_from(["", "/#", "=&"]))
def test_form_encode_is_quote_plus(text: str, safe: str) -> None:
    assert form_encode(text, safe) == quote_plus(text, safe=safe, errors="surrogateescape")


def _variants_the_long_way(path: str, query: str, with_query: bool) -> list[tuple[str, str]]:
    """Section 4.6 as written: quote_plus with each pair of safe sets, duplicates out."""
    seen = {(path, query if with_query else "")}
    forms = []
    for path_safe, query_safe in (("", ""), ("/#", "=&")):
        form = (
            quote_plus(path, safe=path_safe),
            quote_plus(query, safe=query_safe) if with_query else "",
        )
        if form not in seen:
            seen.add(form)
            forms.append(form if with_query else (form[0], query))
    return forms


@settings(max_examples=200, deadline=None)
@given(TARGET, TARGET, st.booleans())
def test_variant_targets_match_the_long_way(path: str, query: str, with_query: bool) -> None:
    expected = _variants_the_long_way(path, query, with_query)
    assert list(variant_targets(path, query, with_query)) == expected
    assert list(variant_targets(path, query, with_query)) == expected  # remembered


def test_v1_variants_differ_in_their_path() -> None:
    request = RequestSignable(method="GET", path="/a/b", query_string="x=a b")
    paths = [v.path for v in request.variants(query=False)]  # type: ignore[attr-defined]
    assert paths == ["%2Fa%2Fb"]  # the query-only variant is left out: V1 does not sign it
    assert len(list(request.variants())) == 2


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("/.%aAfF09gz"), max_size=14), st.sampled_from(["", "a=b", "b=2&a"]))
def test_v2_target_matches_its_parts(path: str, query: str) -> None:
    expected = (normalize_path(path), encode_query(query))
    assert v2_target(path, query) == expected
    assert v2_target(path, query) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb", "/a%2Fb"),
        ("/%aF", "/%AF"),
        ("/%Af/x", "/%AF/x"),
        ("/%%af", "/%%AF"),
        ("/%a%2f", "/%a%2F"),
        ("/%zz%c3", "/%zz%C3"),
    ],
)
def test_escapes_are_upper_cased_only_where_needed(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


def test_memos_stay_bounded() -> None:
    for number in range(signable_module._MEMO_SIZE + 10):
        v2_target(f"/items/{number}", "")
        variant_targets(f"/items/{number}", "")
    assert len(signable_module._V2_TARGETS) <= signable_module._MEMO_SIZE
    assert len(signable_module._VARIANT_TARGETS) <= signable_module._MEMO_SIZE
    long_path = "/" + "a" * (signable_module._MEMO_MAX_LENGTH + 1)
    assert v2_target(long_path, "") == (long_path, "")
    assert (long_path, "") not in signable_module._V2_TARGETS


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [("POST", "/a b", "q=1", b"x"), ("GET", "", "", None), ("PUT", "/p", "", "text")],
)
def test_received_is_the_constructor(method: str, path: str, query: str, body: object) -> None:
    fast = RequestSignable.received(method, path, query, body)  # type: ignore[arg-type]
    plain = RequestSignable(method=method, path=path, query_string=query, body=body)  # type: ignore[arg-type]
    assert (fast.method, fast.path, fast.query_string) == (
        plain.method,
        plain.path,
        plain.query_string,
    )
    assert fast.v2_string(APP, 1) == plain.v2_string(APP, 1)
    assert fast.v1_hexdigest(APP, 1) == plain.v1_hexdigest(APP, 1)


def test_received_refuses_what_the_constructor_refuses() -> None:
    with pytest.raises(InvalidMessageError, match="path must be str"):
        RequestSignable.received("GET", b"/a", "", b"")  # type: ignore[arg-type]


def test_uuid_shape_memo_never_admits_a_bad_shape() -> None:
    good = "0F5A3C0E-6C2A-4B8E-9D7F-2B1C3D4E5F60"
    assert is_uuid_shaped(good) and is_uuid_shaped(good)
    for bad in (None, "", good + " ", good[:-1] + "g", "x" * 36, good.replace("-", "_")):
        assert not is_uuid_shaped(bad)
        assert not is_uuid_shaped(bad)  # asked twice: a refusal is not remembered as a pass


@pytest.mark.parametrize(
    "message",
    [
        "plain",
        'quote " and \\ backslash',
        "caf\u00e9 \u2603 \U0001f600",
        "ctl \x00\x1f\n",
        "\ud800",
    ],
)
def test_error_body_is_what_json_dumps_writes(message: str) -> None:
    assert error_body(message) == json.dumps({"errors": {"mauth": [message]}}).encode("utf-8")


def _tampered(target: str) -> tuple[RequestSignable, Signed]:
    headers = Signer(APP, PRIVATE, "v1,v2").signed_headers(
        RequestSignable(method="POST", url=target, body=b"original")
    )
    return RequestSignable(method="POST", url=target, body=b"tampered"), Signed.from_headers(
        headers
    )


@pytest.mark.parametrize("target", ["/orders/a", "/orders?x=1"])
def test_a_failed_request_leaves_no_reference_cycles(target: str) -> None:
    """Recorded failures kept their tracebacks, whose frames held the failures: every
    failed request left a cycle (27 objects) for the garbage collector."""
    authenticator = Authenticator(StaticKeySource({APP: PUBLIC}))
    request, signed = _tampered(target)
    with pytest.raises(InauthenticError):
        authenticator.authenticate(request, signed)  # warm: imports, memos
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            request, signed = _tampered(target)
            with pytest.raises(InauthenticError) as caught:
                authenticator.authenticate(request, signed)
            del caught
        assert gc.collect() == 0
    finally:
        gc.enable()


class _Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_failure_warning_is_an_ordinary_record() -> None:
    logger = logging.getLogger("mauth_client.test_hot_paths")
    logger.propagate = False
    handler = _Counting()
    logger.addHandler(handler)
    authenticator = Authenticator(StaticKeySource({APP: PUBLIC}), logger=logger)
    try:
        request, signed = _tampered("/orders/a")
        with pytest.raises(InauthenticError):
            authenticator.authenticate(request, signed)
        (record,) = handler.records
        assert record.levelno == logging.WARNING and record.name == logger.name
        assert record.funcName == "_fail" and record.filename == "authenticator.py"
        message = record.getMessage()
        assert message.startswith(f"MAuth: app '{APP}' V1 inauthentic: ")
        assert "after V2 failed" in message
        # The logger's own switches still decide: a filter, then ``disabled``.
        logger.addFilter(lambda r: False)
        with pytest.raises(InauthenticError):
            authenticator.authenticate(*_tampered("/orders/a"))
        logger.filters.clear()
        logger.disabled = True
        with pytest.raises(InauthenticError):
            authenticator.authenticate(*_tampered("/orders/a"))
        assert len(handler.records) == 1
    finally:
        logger.disabled = False
        logger.removeHandler(handler)


def test_a_logger_adapter_still_gets_the_failure_warning() -> None:
    """Upstream users pass their own logger-like objects: only ``.warning`` is assumed."""
    logger = logging.getLogger("mauth_client.test_hot_paths.adapter")
    logger.propagate = False
    handler = _Counting()
    logger.addHandler(handler)
    adapter = logging.LoggerAdapter(logger, {"request_id": "r-1"})
    authenticator = Authenticator(StaticKeySource({APP: PUBLIC}), logger=adapter)  # type: ignore[arg-type]
    try:
        with pytest.raises(InauthenticError):
            authenticator.authenticate(*_tampered("/orders/a"))
        (record,) = handler.records
        assert record.levelno == logging.WARNING and "after V2 failed" in record.getMessage()
        assert record.request_id == "r-1"  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(handler)
