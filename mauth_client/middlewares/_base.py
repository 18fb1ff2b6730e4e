"""What the WSGI and ASGI middleware share: their options and the pass-through decision."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, Generic, TypeVar

from ..authenticator import Authenticator
from ..body import DEFAULT_SPOOL_THRESHOLD
from ..config import Config, require_configured
from ..permissions import Permissions, PermissionsSpec, Rule, RuleLike, Rules
from ..server import RequestGuard, is_exempt

App = TypeVar("App")


class MiddlewareBase(Generic[App]):
    """``exempt``: paths (or prefixes ending in ``*``) let through unauthenticated, such
    as health checks. ``should_authenticate(request)``: return False to let a request
    through (the WSGI environ or the ASGI scope). ``app_uuids``: an allow-list (403 for
    others). The authenticator is built from ``config`` or the environment unless
    given. Bodies above ``spool_threshold`` bytes go to a temporary file; bodies above
    ``max_body_size`` bytes (default ``MAUTH_MAX_BODY_SIZE``, else unlimited) get a 413.
    Requests failing a check that needs no body get their answer before it is read.
    ``rules``: ``[("POST", "/studies/*", "studies:write"), ("*", "/admin/*", "admin")]``,
    the permissions (from ``permissions``, else the config's) each route needs; a
    caller lacking one gets a 403. Its permissions reach the app as ``mauth.permissions``."""

    def __init__(
        self,
        app: App,
        exempt: Collection[str] | None = None,
        *,
        should_authenticate: Callable[[Any], bool] | None = None,
        authenticator: Authenticator | None = None,
        config: Config | None = None,
        app_uuids: Collection[str] | None = None,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        max_body_size: int | None = None,
        rules: Iterable[RuleLike | Rule] | Rules | None = None,
        permissions: PermissionsSpec | Permissions | None = None,
    ) -> None:
        self.app = app
        self.exempt = frozenset(exempt or ())
        self.should_authenticate = should_authenticate
        if authenticator is None:  # fail here, not with a 500 on every request
            require_configured(config, type(self).__name__, upstream_words=True)
        self.guard = RequestGuard(
            authenticator,
            config=config,
            app_uuids=app_uuids,
            max_body_size=max_body_size,
            rules=rules,
            permissions=permissions,
        )
        self.spool_threshold = spool_threshold

    def passes_through(self, path: str, decoded_path: str, request: Any) -> bool:
        """True when the request goes to the app unauthenticated: an exempt path (as
        sent or as decoded), or ``should_authenticate`` said no."""
        if self.exempt and (is_exempt(path, self.exempt) or is_exempt(decoded_path, self.exempt)):
            return True
        return self.should_authenticate is not None and not self.should_authenticate(request)
