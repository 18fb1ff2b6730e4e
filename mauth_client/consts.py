"""Protocol constants: header names, tokens, header patterns and environ keys.

The names match the upstream ``mauth_client.consts`` module so that code importing
them keeps working (see ``mauth-protocol.md`` section 1).
"""

from __future__ import annotations

import re
from typing import Final

# V1 headers and token.
X_MWS_AUTH: Final = "X-MWS-Authentication"
X_MWS_TIME: Final = "X-MWS-Time"
MWS_TOKEN: Final = "MWS"  # noqa: S105 (a protocol token, not a password)

# V2 headers and token.  The V2 authentication value ends in ";" (section 1).
MCC_AUTH: Final = "MCC-Authentication"
MCC_TIME: Final = "MCC-Time"
MWSV2_TOKEN: Final = "MWSV2"  # noqa: S105
AUTH_HEADER_DELIMITER: Final = ";"

# Anchored at both ends (fullmatch semantics via \A and \Z): "$" alone would also
# accept a trailing newline, which the protocol does not (section 1). These define
# the header syntax and are kept for code importing them; received headers are
# parsed by mauth_client.signed in linear time (X_MWS_AUTH_PATTERN backtracks
# quadratically on hostile input such as "MWS" + many spaces + a letter).
X_MWS_AUTH_PATTERN: Final = re.compile(r"\A([^ ]+) *([^:]+):([^:]+)\Z")
MWSV2_AUTH_PATTERN: Final = re.compile(r"\A(MWSV2) ([^:]+):([^:]+);\Z")

# Keys under which adapters hand the outcome to the application (section 7).
ENV_APP_UUID: Final = "mauth.app_uuid"
ENV_AUTHENTIC: Final = "mauth.authentic"
ENV_PROTOCOL_VERSION: Final = "mauth.protocol_version"

# Messages may be signed at most this many seconds before or after "now" (section 4).
ALLOWED_DRIFT_SECONDS: Final = 300

# Lower-case hex SHA-512 of the empty string: the V2 body digest of "no body".
EMPTY_BODY_SHA512: Final = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)

SIGN_VERSIONS: Final = ("v1", "v2")
DEFAULT_SIGN_VERSIONS: Final = "v1"
