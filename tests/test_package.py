"""The package's top level: light to import, every public name reachable."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mauth_client


def test_import_is_light() -> None:
    code = "import sys, mauth_client; print('requests' in sys.modules, 'flask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False False", done.stderr


@pytest.mark.parametrize("name", mauth_client.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(mauth_client, name) is not None


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mauth_client.nope  # noqa: B018


def test_upstream_module_paths() -> None:
    from mauth_client.authenticator import LocalAuthenticator, RemoteAuthenticator
    from mauth_client.consts import ENV_APP_UUID, ENV_AUTHENTIC, ENV_PROTOCOL_VERSION, MCC_AUTH
    from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
    from mauth_client.httpx_mauth import MAuthHttpx
    from mauth_client.key_holder import KeyHolder
    from mauth_client.lambda_authenticator import LambdaAuthenticator
    from mauth_client.middlewares import MAuthASGIMiddleware, MAuthWSGIMiddleware
    from mauth_client.requests_mauth import MAuth

    assert (ENV_APP_UUID, ENV_AUTHENTIC, ENV_PROTOCOL_VERSION, MCC_AUTH) == (
        "mauth.app_uuid",
        "mauth.authentic",
        "mauth.protocol_version",
        "MCC-Authentication",
    )
    for item in (
        LocalAuthenticator,
        RemoteAuthenticator,
        FlaskAuthenticator,
        requires_authentication,
        MAuthHttpx,
        KeyHolder,
        LambdaAuthenticator,
        MAuthASGIMiddleware,
        MAuthWSGIMiddleware,
        MAuth,
    ):
        assert callable(item)
