"""The exceptions of mauth-client, one hierarchy rooted at :class:`MAuthError`.

The upstream names (``InauthenticError``, ``UnableToAuthenticateError``,
``UnableToSignError``, ``MAuthNotPresent``, ``MissingV2Error``) are kept. Messages
say what was wrong and never contain key material or whole signatures.
"""

from __future__ import annotations


class MAuthError(Exception):
    """Base class of every exception this library raises on purpose."""


class ConfigurationError(MAuthError, ValueError):
    """A setting is missing, malformed or contradicts another one."""


class MissingConfigurationError(ConfigurationError, TypeError):
    """An adapter was built with no MAuth configuration. Also a ``TypeError``, which is
    what upstream's adapters raised for this, so existing ``except`` clauses still match."""


class KeyFormatError(ConfigurationError):
    """A key could not be parsed; the message names the accepted formats."""


class UnableToSignError(MAuthError):
    """A message could not be signed (bad method, URL, body or time)."""


class InvalidMessageError(UnableToSignError, ValueError):
    """A method, URL, status code, time or body given to describe a message is malformed."""


class BodyReadError(UnableToSignError):
    """Reading a streamed body failed; the original error is the ``__cause__``."""


class InauthenticError(MAuthError):
    """The message is not authentic: a 401 in server adapters."""


class MAuthNotPresent(InauthenticError):
    """The message carries no MAuth signature at all."""


class MissingV2Error(InauthenticError):
    """V2 is required but the message is signed with V1 only."""


class UnableToAuthenticateError(MAuthError):
    """Authenticity could not be determined because the MAuth service failed: a 500."""


class ReplayedRequestError(InauthenticError):
    """A signature of this request was already accepted within the time window: a 401."""


class ReplayCacheUnavailable(UnableToAuthenticateError):
    """The replay cache (``MAUTH_REPLAY_CACHE``) could not be asked: a 503."""
