"""A Flask app protected by MAuth, called with requests. Runs as written, no configuration.

    python3 examples/flask_app.py

Starts a local MAuth service and the app on 127.0.0.1, then calls it signed (V1 and
V2, with the response's signature checked), unsigned, and on its open health check.
"""

from __future__ import annotations

import requests
from flask import Flask, g, jsonify

from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.requests_mauth import MAuth
from mauth_client.testing import LocalMAuthService, serve_wsgi


def create_app(config: dict[str, str]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)  # MAUTH_APP_UUID, MAUTH_PRIVATE_KEY, MAUTH_URL...
    FlaskAuthenticator(app)

    @app.get("/app_status")  # not decorated: open to load balancers
    def app_status() -> str:
        return "OK"

    @app.post("/studies")
    @requires_authentication(sign_response=True)
    def create_study() -> object:
        return jsonify(created_by=g.mauth_app_uuid), 201

    return app


def main() -> None:
    with LocalMAuthService() as service:
        server_app, client_app = service.new_app(), service.new_app()
        app = create_app(
            {
                "MAUTH_APP_UUID": server_app.app_uuid,
                "MAUTH_PRIVATE_KEY": server_app.private_key,
                "MAUTH_URL": service.url,
            }
        )
        with serve_wsgi(app) as url:
            for versions in ("v1", "v2"):
                auth = MAuth(
                    client_app.app_uuid,
                    client_app.private_key,
                    versions,
                    authenticate_responses=True,
                    config=service.config_for(client_app),
                )
                answer = requests.post(f"{url}/studies", json={"name": "x"}, auth=auth, timeout=10)
                print(
                    f"signed {versions}: {answer.status_code} {answer.json()} "
                    f"(response signed by {answer.mauth_app_uuid[:8]}...)"
                )
                assert answer.status_code == 201
            unsigned = requests.post(f"{url}/studies", json={}, timeout=10)
            print(
                f"unsigned: {unsigned.status_code} {unsigned.json()['errors']['mauth'][0][:50]}..."
            )
            assert unsigned.status_code == 401
            health = requests.get(f"{url}/app_status", timeout=10)
            print(f"health check: {health.status_code} {health.text}")
            assert health.status_code == 200


if __name__ == "__main__":
    main()
