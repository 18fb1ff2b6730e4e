"""Issue 10 item 4: V1 does not sign the query, so no V2-to-V1 fallback with a query.

The attack: a request signed "v1,v2" replayed with another query fails V2 and was
then accepted through V1. Requests upstream 1.10.1 signed with "/" in the query
still authenticate: its V2 query encoding is a known variant (vector below, made
with upstream's own signer in a separate virtualenv and pinned by hand).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import requests

from mauth_client.authenticator import Authenticator
from mauth_client.key_source import StaticKeySource
from mauth_client.middlewares import MAuthWSGIMiddleware
from mauth_client.signable import RequestSignable
from mauth_client.signed import Signed
from mauth_client.signer import Signer
from mauth_client.testing import AppIdentity, LocalMAuthService

from ..servers import werkzeug_server


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"query": environ.get("QUERY_STRING")}).encode()]


def test_v1_v2_request_replayed_with_another_query_is_refused(
    service: LocalMAuthService, me: AppIdentity, caller: AppIdentity
) -> None:
    with werkzeug_server(MAuthWSGIMiddleware(echo, config=service.config_for(me))) as base:
        headers = Signer(caller.app_uuid, caller.private_key, "v1,v2").signed_headers(
            RequestSignable(method="GET", url="/accounts?id=1")
        )
        assert requests.get(f"{base}/accounts?id=1", headers=headers, timeout=10).ok
        replayed = requests.get(f"{base}/accounts?id=2", headers=headers, timeout=10)
    assert replayed.status_code == 401
    assert "V2" in replayed.json()["errors"]["mauth"][0]


def test_v1_only_with_a_query_still_accepted_and_warned_once_per_app(
    service: LocalMAuthService,
    me: AppIdentity,
    caller: AppIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mauth_client")
    signer = Signer(caller.app_uuid, caller.private_key, "v1")
    with werkzeug_server(MAuthWSGIMiddleware(echo, config=service.config_for(me))) as base:
        for n in range(3):
            target = f"/accounts?id={n}"
            headers = signer.signed_headers(RequestSignable(method="GET", url=target))
            assert requests.get(base + target, headers=headers, timeout=10).ok
    notes = [r for r in caplog.records if "does not cover the query" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    assert caller.app_uuid in notes[0].getMessage()


def test_v1_fallback_still_applies_without_a_query(caller: AppIdentity) -> None:
    authenticator = Authenticator(StaticKeySource({caller.app_uuid: caller.public_key}))
    good = Signer(caller.app_uuid, caller.private_key, "v1").signed_headers(
        RequestSignable(method="GET", url="/accounts")
    )
    broken_v2 = {"MCC-Authentication": f"MWSV2 {caller.app_uuid}:AAAA;", "MCC-Time": "1"}
    signed = Signed.from_headers({**good, **broken_v2})
    result = authenticator.authenticate(RequestSignable(method="GET", url="/accounts"), signed)
    assert result.protocol_version == 1


# Signed by upstream mauth-client 1.10.1 (pip install mauth-client==1.10.1 in its own
# virtualenv) with tests/vectors/signing-key.pem, app b0603e5c-..., time 1700000000,
# sign_versions "v2". Upstream leaves "/" bare in the encoded query.
VECTOR_PUBLIC_KEY = Path(__file__).parent.parent / "vectors" / "signing-key.pub.pem"
UPSTREAM_APP = "b0603e5c-c344-488c-83ba-db7e4a6e2a57"
UPSTREAM_CASES = [
    (
        "/api/items",
        "redirect=/a/b&x=1",
        "bCCteP78euGPqF2mYn+EvcOrwDpRyG57N4VTrScQ53MLgca92jhuYsQ7A8dQXXTGJjk/OeNm2fkWibSOWS9d"
        "2apodAheTG9noSXJ6qfuiJNZN+sKTZkVihVXCsoWZl/k9J2veNZe3i+6cSNQ8yDZ038+sS+pZGJk0n+ZvnGm"
        "yA6e/SQ2jb/kMr9+44SoRGVyhRyIpmrCh0KJEsUrhO4rAzojpoK809jUg6KKP++KUmDYfvAGcPOtR+NKxvTn"
        "d7UvYagR7/YsAdR5TLXNX7jmzAIkiL4XpmNQoWodIT0b/MsHw5/flGMtDSfple1/n9KzAZ/A+WU9AaH/bCte"
        "NFoInQ==",
    ),
    (
        "/api/items",
        "path=%2Fdocs%2Fv1&q=a b",
        "GAgHdmXY74RciWJOVifxpicCyiXEfN/rdGH0eScbCoOREd8GfzEmrIO5jOmQNSDU16sE0XEEDKyzrgdB70N7"
        "89uGMwvhsrYImBfuaMnliDe6YaQ2+8hg64XvmvjaRiLT83E/Z9RV9deiWeKlnWBDh19on77gw9BE25igdubK"
        "7HeCgCZB3t89VCOevQDtxlm+jhOv3meuCZceJCIJWQI67Pa+VzQJOwGzxdspzv1FSYzWuxEryJj2YQHd7xnh"
        "QAjB2HmDe2+T+vNyqFd8D/kp7dLfpl1Dd+VykbXE/PatPNYieKXQYdbUzNDEF5HT4dmgoKNf+lZ1DB5vpUm2"
        "akpofg==",
    ),
]


@pytest.mark.parametrize(("path", "query", "signature"), UPSTREAM_CASES)
def test_upstream_1_10_1_slash_in_query_is_a_known_variant(
    path: str, query: str, signature: str
) -> None:
    authenticator = Authenticator(
        StaticKeySource({UPSTREAM_APP: VECTOR_PUBLIC_KEY.read_text()}), clock=lambda: 1_700_000_000
    )
    signed = Signed.from_headers(
        {"MCC-Authentication": f"MWSV2 {UPSTREAM_APP}:{signature};", "MCC-Time": "1700000000"}
    )
    received = RequestSignable(method="GET", path=path, query_string=query)
    assert authenticator.authenticate(received, signed).protocol_version == 2
    # ... and the variant covers that query only.
    other = RequestSignable(method="GET", path=path, query_string=query + "&z=1")
    with pytest.raises(Exception, match="Signature verification failed"):
        authenticator.authenticate(other, signed)
