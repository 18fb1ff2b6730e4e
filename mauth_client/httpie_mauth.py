"""MAuth for HTTPie: ``http --auth-type=mauth ...`` (install ``mauth-client[httpie]``).

Registered under HTTPie's ``httpie.plugins.auth.v1`` entry point group, so installing
this package into HTTPie's environment is all it takes::

    export APP_UUID=... MAUTH_PRIVATE_KEY_FILE=./my-app.key   # or MAUTH_PRIVATE_KEY
    http --auth-type=mauth POST https://api.example.com/studies name=x

    http --auth-type=mauth --auth "$APP_UUID:./my-app.key" GET https://api.example.com/ping

Where the identity comes from: ``--auth APP_UUID:KEY_FILE`` when given (``--auth
APP_UUID`` alone takes the key from the environment); otherwise the environment, as
everywhere in this package (``APP_UUID``/``MAUTH_APP_UUID``, ``MAUTH_PRIVATE_KEY``/
``PRIVATE_KEY``/``MAUTH_PRIVATE_KEY_FILE``, ``MAUTH_SIGN_VERSIONS``). The signing is
done by :class:`~mauth_client.requests_mauth.MAuth` (HTTPie sends with requests), so
streamed uploads are signed as requests' are. ``--compress`` changes the body after
signing and so cannot be combined with it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ._optional import missing_extra

try:
    from httpie.plugins import AuthPlugin
except ImportError as exc:  # the httpie extra is not installed
    raise missing_extra(__name__, "httpie", exc) from exc

from .config import Config
from .exceptions import ConfigurationError
from .requests_mauth import MAuth


def auth_from(raw_auth: str | None, env: Any = None) -> MAuth:
    """The requests auth for ``--auth`` (``APP_UUID[:KEY_FILE]``, or ``None``) and the
    environment. Raises :class:`ConfigurationError` naming what to set or fix."""
    overrides: dict[str, Any] = {}
    if raw_auth:
        app_uuid, _, key_file = raw_auth.partition(":")  # a UUID has no ':', a path may
        if app_uuid.strip():
            overrides["app_uuid"] = app_uuid.strip()
        if key_file:
            path = Path(key_file).expanduser()
            try:
                overrides["private_key"] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ConfigurationError(
                    f"--auth: cannot read the key file {path}: {reason}"
                ) from None
    config = Config.from_env(env, **overrides)
    return MAuth(config=config)


class MAuthAuthPlugin(AuthPlugin):  # type: ignore[misc]  # httpie ships no type hints
    """``--auth-type=mauth``: sign every request HTTPie sends with MAuth."""

    name = "MAuth"
    auth_type = "mauth"
    description = (
        "Sign requests with MAuth. --auth APP_UUID:KEY_FILE, or APP_UUID and "
        "MAUTH_PRIVATE_KEY(_FILE) in the environment."
    )
    auth_require = False  # the environment may hold the identity
    auth_parse = False  # "APP_UUID:KEY_FILE" is read here; a key file path may hold ':'
    prompt_password = False

    def get_auth(self, username: str | None = None, password: str | None = None) -> MAuth:
        try:
            return auth_from(self.raw_auth)
        except ConfigurationError as exc:
            # HTTPie would print a traceback for an exception: one line and a usage exit.
            print(f"http: error: --auth-type=mauth: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
