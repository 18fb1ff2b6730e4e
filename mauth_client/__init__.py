"""mauth-client: sign and authenticate HTTP messages with the MAuth protocol.

The names most code needs are re-exported here; the modules keep the upstream
package's layout (``mauth_client.signer.Signer`` and so on) for drop-in use.
"""

from __future__ import annotations

import logging

from .exceptions import (
    BodyReadError,
    ConfigurationError,
    InauthenticError,
    InvalidMessageError,
    KeyFormatError,
    MAuthError,
    MAuthNotPresent,
    MissingV2Error,
    ReplayCacheUnavailable,
    ReplayedRequestError,
    UnableToAuthenticateError,
    UnableToSignError,
)
from .keys import load_private_key, load_public_key
from .signable import RequestSignable, ResponseSignable
from .signed import Signed
from .signer import Signer

__version__ = "2.0.0.dev0"

# A library logs, the application decides where that goes (and at what level).
logging.getLogger("mauth_client").addHandler(logging.NullHandler())

# Loaded on first use (PEP 562), so that "import mauth_client" stays light.
_LAZY = {
    "Authenticator": "authenticator",
    "AuthResult": "authenticator",
    "Config": "config",
    "StaticKeySource": "key_source",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mauth_client' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
    "AuthResult",
    "Authenticator",
    "BodyReadError",
    "Config",
    "ConfigurationError",
    "InauthenticError",
    "InvalidMessageError",
    "KeyFormatError",
    "MAuthError",
    "MAuthNotPresent",
    "MissingV2Error",
    "ReplayCacheUnavailable",
    "ReplayedRequestError",
    "RequestSignable",
    "ResponseSignable",
    "Signed",
    "Signer",
    "StaticKeySource",
    "UnableToAuthenticateError",
    "UnableToSignError",
    "__version__",
    "load_private_key",
    "load_public_key",
]
