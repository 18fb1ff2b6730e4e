"""The drop-in seam: a test suite that patches upstream's
``LocalAuthenticator.is_authentic`` decides alone; the pre-checks step aside."""

from __future__ import annotations

from unittest import mock

from mauth_client.authenticator import Authenticator, LocalAuthenticator
from mauth_client.key_source import StaticKeySource
from mauth_client.server import CONTINUE, RequestGuard


def test_precheck_steps_aside_when_is_authentic_is_patched() -> None:
    guard = RequestGuard(Authenticator(StaticKeySource({})))
    assert guard.precheck("GET", "", {}).status == 401  # unsigned: refused unread
    with mock.patch.object(LocalAuthenticator, "is_authentic", return_value=(True, 200, "")):
        outcome = guard.precheck("GET", "", {})
        assert outcome.status == CONTINUE and outcome.prechecked is None
    assert guard.precheck("GET", "", {}).status == 401
