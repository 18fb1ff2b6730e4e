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

__all__ = [
    "BodyReadError",
    "ConfigurationError",
    "InauthenticError",
    "InvalidMessageError",
    "KeyFormatError",
    "MAuthError",
    "MAuthNotPresent",
    "MissingV2Error",
    "RequestSignable",
    "ResponseSignable",
    "Signed",
    "Signer",
    "UnableToAuthenticateError",
    "UnableToSignError",
    "__version__",
    "load_private_key",
    "load_public_key",
]
