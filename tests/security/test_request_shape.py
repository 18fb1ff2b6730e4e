"""Issue 10 items 8 (UUID shape) and 10 (method): refused before any key lookup."""

from __future__ import annotations

import pytest
import requests

from mauth_client.authenticator import Authenticator
from mauth_client.exceptions import InauthenticError
from mauth_client.key_source import StaticKeySource
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable, ResponseSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from ..servers import werkzeug_server


def ok_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [])  # type: ignore[operator]
    return [b"ok"]


def junk_uuids(count: int) -> list[str]:
    shapes = [
        "{n}",
        "not-a-uuid-{n}",
        "../../admin{n}",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4{n}x",
        "0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c{n:02d}",
        "{{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c{n:02d}}}",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3cg{n}",
        " 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c{n:02d}",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c{n:02d}0",
        "%2e%2e%2f{n}",
    ]
    return [shapes[i % len(shapes)].format(n=i % 100) for i in range(count)]


def test_junk_app_uuids_cause_no_key_lookup(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    with werkzeug_server(MAuthWSGIMiddleware(ok_app, config=service.config_for(me))) as base:
        service.reset_counters()
        session = requests.Session()
        statuses = set()
        headers = Signer(caller.app_uuid, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/x")
        )
        signature = headers["MCC-Authentication"].split(":", 1)[1]
        for junk in junk_uuids(300):
            headers["MCC-Authentication"] = f"MWSV2 {junk}:{signature}"
            statuses.add(session.get(f"{base}/x", headers=headers, timeout=10).status_code)
        for value in ("MWS :sig", "MWS  :c2ln", "MWSV2 :c2ln;"):
            header = "MCC-Authentication" if value.startswith("MWSV2") else "X-MWS-Authentication"
            time_header = "MCC-Time" if header.startswith("MCC") else "X-MWS-Time"
            answer = session.get(
                f"{base}/x", headers={header: value, time_header: headers["MCC-Time"]}, timeout=10
            )
            statuses.add(answer.status_code)
        assert statuses == {401}
        assert service.calls("security_tokens") == 0
        # Upper-case hex is UUID-shaped: it is looked up (and refused as unknown).
        upper = caller.app_uuid.upper()
        headers = Signer(upper, caller.private_key, "v2").signed_headers(
            RequestSignable(method="GET", url="/x")
        )
        session.get(f"{base}/x", headers=headers, timeout=10)
        assert service.calls("security_tokens") == 1


def test_v1_response_signature_does_not_replay_as_a_request(caller: AppIdentity) -> None:
    """A V1 response's string is "200\\n<body>\\n<app>\\n<time>"; with the body
    "/admin\\n" it is the string of a request with method "200", path "/admin" and
    no body."""
    time = "1800000000"
    signer = Signer(caller.app_uuid, caller.private_key, "v1")
    headers = signer.signed_headers(ResponseSignable(200, b"/admin\n"), {"time": time})
    authenticator = Authenticator(
        StaticKeySource({caller.app_uuid: caller.public_key}), clock=lambda: 1_800_000_000
    )
    # The response signature is authentic as a response ...
    authenticator.authenticate(ResponseSignable(200, b"/admin\n"), Signed.from_headers(headers))
    # ... and its V1 string equals that of this "request" with an empty body:
    forged = RequestSignable(method="200", path="/admin", query_string="", body=b"")
    assert forged.v1_hexdigest(caller.app_uuid, time) == ResponseSignable(
        200, b"/admin\n"
    ).v1_hexdigest(caller.app_uuid, time)
    with pytest.raises(InauthenticError, match="must start with a letter"):
        authenticator.authenticate(forged, Signed.from_headers(headers))
