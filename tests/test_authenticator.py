"""The authentication policy of section 4, with a fixed clock and a static key source."""

from __future__ import annotations

import logging

import pytest

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import (
    InauthenticError,
    MAuthNotPresent,
    MissingV2Error,
    UnableToAuthenticateError,
)
from mauth_client.key_source import StaticKeySource
from mauth_client.signable import RequestSignable, ResponseSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer

from .conftest import new_key_pair

NOW = 1_800_000_000
APP = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # UUID-shaped: others are refused unread
PRIVATE, PUBLIC = new_key_pair()
OTHER_PRIVATE, _ = new_key_pair()
SIGNER = Signer(APP, PRIVATE, "v1,v2")


def make(**kwargs: object) -> Authenticator:
    return Authenticator(StaticKeySource({APP: PUBLIC}), clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def request(body: bytes = b"payload", url: str = "/resource?b=2&a=1") -> RequestSignable:
    return RequestSignable(method="POST", url=url, body=body)


def headers(
    versions: str = "v1,v2", at: int = NOW, key: str = PRIVATE, url: str = "/resource?b=2&a=1"
) -> dict[str, str]:
    return Signer(APP, key, versions).signed_headers(request(url=url), {"time": at})


# V2-to-V1 fallback only happens for requests without a query (V1 does not sign it).
NO_QUERY = "/resource"


def test_v2_authentic() -> None:
    result = make().authenticate(request(), Signed.from_headers(headers("v2")))
    assert (result.app_uuid, result.protocol_version) == (APP, 2)


def test_v1_authentic() -> None:
    result = make().authenticate(request(), Signed.from_headers(headers("v1")))
    assert result.protocol_version == 1


def test_both_present_uses_v2() -> None:
    assert make().authenticate(request(), Signed.from_headers(headers())).protocol_version == 2


def test_response_authentication() -> None:
    signed = Signed.from_headers(
        SIGNER.signed_headers(ResponseSignable(201, b"made"), {"time": NOW})
    )
    assert make().authenticate(ResponseSignable(201, b"made"), signed).app_uuid == APP
    with pytest.raises(InauthenticError):
        make().authenticate(ResponseSignable(200, b"made"), signed)


def test_no_signature() -> None:
    with pytest.raises(MAuthNotPresent, match="No mAuth signature present"):
        make().authenticate(request(), Signed.from_headers({}))


# --- The fallback matrix (section 4.5) ------------------------------------------------


def _mixed(v2_good: bool, v1_good: bool) -> dict[str, str]:
    good = headers(url=NO_QUERY)
    bad = headers(key=OTHER_PRIVATE, url=NO_QUERY)
    return {
        "MCC-Authentication": (good if v2_good else bad)["MCC-Authentication"],
        "MCC-Time": str(NOW),
        "X-MWS-Authentication": (good if v1_good else bad)["X-MWS-Authentication"],
        "X-MWS-Time": str(NOW),
    }


@pytest.mark.parametrize(
    ("v2_good", "v1_good", "options", "outcome"),
    [
        (True, True, {}, 2),
        (True, False, {}, 2),
        (False, True, {}, 1),  # V2 fails, V1 present: fall back
        (False, False, {}, None),
        (False, True, {"disable_fallback_to_v1": True}, None),
        (False, True, {"v2_only": True}, None),
        (True, False, {"v2_only": True}, 2),
        (True, True, {"disable_fallback_to_v1": True}, 2),
    ],
)
def test_fallback_matrix(
    v2_good: bool, v1_good: bool, options: dict[str, bool], outcome: int | None
) -> None:
    authenticator = make(**options)
    signed = Signed.from_headers(_mixed(v2_good, v1_good))
    if outcome is None:
        with pytest.raises(InauthenticError, match="Signature verification failed"):
            authenticator.authenticate(request(url=NO_QUERY), signed)
    else:
        assert authenticator.authenticate(request(url=NO_QUERY), signed).protocol_version == outcome


def test_v2_only_with_only_v1() -> None:
    with pytest.raises(MissingV2Error, match="requires mAuth v2"):
        make(v2_only=True).authenticate(request(), Signed.from_headers(headers("v1")))


def test_v2_failure_without_v1_present() -> None:
    with pytest.raises(InauthenticError):
        make().authenticate(request(b"tampered"), Signed.from_headers(headers("v2")))


# --- The time window --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "authentic"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (10**6, False)],
)
@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_time_window_edges(offset: int, authentic: bool, versions: str) -> None:
    signed = Signed.from_headers(headers(versions, at=NOW + offset))
    if authentic:
        make().authenticate(request(), signed)
    else:
        with pytest.raises(InauthenticError, match="Time verification failed"):
            make().authenticate(request(), signed)


def test_time_window_is_configurable() -> None:
    signed = Signed.from_headers(headers("v2", at=NOW - 30))
    with pytest.raises(InauthenticError, match="at most 10 seconds"):
        make(time_window=10).authenticate(request(), signed)


@pytest.mark.parametrize(
    "bad_time", ["", "abc", "1.5", "-1", "+5", " 5 5", "1e9", "\u0661\u0662", "9" * 13, "9" * 5000]
)
def test_bad_times_are_inauthentic_never_exceptions(bad_time: str) -> None:
    good = headers("v2")
    signed = Signed.from_headers(
        {"MCC-Authentication": good["MCC-Authentication"], "MCC-Time": bad_time}
    )
    ok, status, message = make().is_authentic(request(), signed)
    assert (ok, status) == (False, 401)
    assert "Time verification failed" in message


# --- Tokens and malformed headers --------------------------------------------------------


def test_wrong_token_in_v2_header() -> None:
    signature = headers("v2")["MCC-Authentication"].split(":", 1)[1]
    signed = Signed(mcc_authentication=f"MWS {APP}:{signature}", mcc_time=str(NOW))
    with pytest.raises(InauthenticError, match="Expected MWSV2; token was MWS"):
        make().authenticate(request(), signed)


def test_wrong_token_in_v1_header() -> None:
    signature = headers("v1")["X-MWS-Authentication"].split(":", 1)[1]
    signed = Signed(x_mws_authentication=f"MWSX {APP}:{signature}", x_mws_time=str(NOW))
    with pytest.raises(InauthenticError, match="Expected MWS; token was MWSX"):
        make().authenticate(request(), signed)


def test_malformed_v2_header() -> None:
    signed = Signed(mcc_authentication=f"MWSV2 {APP}:abc", mcc_time=str(NOW))  # no ";"
    with pytest.raises(InauthenticError, match="MCC-Authentication header is malformed"):
        make().authenticate(request(), signed)


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        ("!!!!", "is not standard base64"),
        ("QUJ", "is not standard base64"),
        ("AAAA", "does not match"),
        ("c2ln" * 200, "does not match"),
    ],
)
def test_garbage_signatures_are_inauthentic(signature: str, why: str) -> None:
    signed = Signed(mcc_authentication=f"MWSV2 {APP}:{signature};", mcc_time=str(NOW))
    ok, status, message = make().is_authentic(request(), signed)
    assert (ok, status) == (False, 401)
    assert why in message


def test_unknown_app_is_inauthentic() -> None:
    signed = Signed.from_headers(
        Signer("5ca1ab1e-0000-4000-8000-00000000beef", PRIVATE, "v2").signed_headers(
            request(), {"time": NOW}
        )
    )
    with pytest.raises(InauthenticError, match="no public key is known"):
        make().authenticate(request(), signed)


def test_unreadable_stream_body_is_inauthentic() -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield b"x"
        raise OSError("client went away")

    received = RequestSignable(method="POST", url="/resource?b=2&a=1", body=broken())
    ok, status, message = make().is_authentic(received, Signed.from_headers(headers("v2")))
    assert (ok, status) == (False, 401)
    assert "could not be read" in message


# --- Section 4.6: re-encoded targets ----------------------------------------------------


def _signed_for(url: str, versions: str) -> Signed:
    return Signed.from_headers(
        Signer(APP, PRIVATE, versions).signed_headers(
            RequestSignable(method="GET", url=url), {"time": NOW}
        )
    )


@pytest.mark.parametrize("versions", ["v1", "v2"])
def test_path_decoded_by_the_server_still_authenticates(versions: str) -> None:
    # The client signed "/a%20b/c%2Fd"; nginx hands the application the decoded path.
    signed = _signed_for("/files/caf%C3%A9%20menu", versions)
    received = RequestSignable(method="GET", path="/files/caf\u00e9 menu")
    received_encoded = RequestSignable(method="GET", path="/files/caf%C3%A9%20menu")
    make().authenticate(received_encoded, signed)
    # Form-encoding the decoded path with "/" bare gives caf%C3%A9+menu, not %20:
    # only a client that form-encoded its path is covered, as in the Ruby client.
    signed_form = _signed_for("/files/caf%C3%A9+menu", versions)
    make().authenticate(received, signed_form)


def test_query_decoded_by_the_server_still_authenticates() -> None:
    signed = _signed_for("/s?q=a%3Db", "v2")  # the client sent q=a%3Db
    received = RequestSignable(method="GET", path="/s", query_string="q=a=b")  # decoded
    make().authenticate(received, signed)


def test_variants_do_not_open_other_paths() -> None:
    signed = _signed_for("/a", "v2")
    with pytest.raises(InauthenticError):
        make().authenticate(RequestSignable(method="GET", path="/b"), signed)


# --- Outcomes and logging ---------------------------------------------------------------


class _FailingSource:
    def get_public_key(self, app_uuid: str) -> str:
        raise UnableToAuthenticateError("the MAuth service answered 503")


def test_service_failure_is_500_and_no_fallback() -> None:
    authenticator = Authenticator(_FailingSource(), clock=lambda: NOW)
    assert authenticator.is_authentic(request(), Signed.from_headers(headers())) == (
        False,
        500,
        "the MAuth service answered 503",
    )
    with pytest.raises(UnableToAuthenticateError):
        authenticator.authenticate(request(), Signed.from_headers(headers()))


def test_is_authentic_triple() -> None:
    assert make().is_authentic(request(), Signed.from_headers(headers())) == (True, 200, "")
    ok, status, message = make().is_authentic(request(), Signed.from_headers({}))
    assert (ok, status) == (False, 401) and "No mAuth signature" in message


def test_logging_names_app_and_version_but_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mauth_client")
    good = headers()
    make().authenticate(request(), Signed.from_headers(good))
    make().is_authentic(request(b"tampered"), Signed.from_headers(good))
    text = caplog.text
    assert f"from app '{APP}' with V2" in text
    assert any(
        r.levelno >= logging.WARNING and "inauthentic" in r.getMessage() for r in caplog.records
    )
    signature = good["MCC-Authentication"].split(":", 1)[1]
    assert signature[:24] not in text
    assert "PRIVATE KEY" not in text and PUBLIC.splitlines()[2] not in text


def test_app_uuid_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mauth_client")
    forged = "x\nCRITICAL root: all systems compromised"
    signed = Signed(mcc_authentication=f"MWSV2 {forged}:c2ln;", mcc_time=str(NOW))
    make().is_authentic(request(), signed)
    assert caplog.records
    assert all("\n" not in record.getMessage() for record in caplog.records)


def test_needs_a_collaborator() -> None:
    with pytest.raises(ValueError, match="key_source or a ticket_checker"):
        Authenticator()


def test_failed_fallback_reports_both_versions() -> None:
    signed = Signed.from_headers(_mixed(v2_good=False, v1_good=False))
    with pytest.raises(InauthenticError) as info:
        make().authenticate(request(url=NO_QUERY), signed)
    message = str(info.value)
    assert message.startswith("Signature verification failed for V1")
    assert "(after V2 failed: Signature verification failed for V2" in message
