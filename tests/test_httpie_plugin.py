"""The HTTPie plugin: the real ``http`` command, with ``--auth-type=mauth``, against a local
Flask app protected by MAuth (the local MAuth service holds the caller's public key)."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g, jsonify, request

from mauth_client.config import ENV_NAMES
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.testing import AppIdentity, LocalMAuthService, generate_identity, serve_wsgi

REPO = Path(__file__).resolve().parents[1]
GROUP = "httpie.plugins.auth.v1"


def declared_entry_point() -> str:
    """The plugin's entry point as pyproject.toml declares it (read as text: Python 3.10
    has no tomllib)."""
    pyproject = (REPO / "pyproject.toml").read_text()
    found = re.search(
        r'\[project\.entry-points\."' + re.escape(GROUP) + r'"\]\nmauth = "([^"]+)"', pyproject
    )
    assert found, "pyproject.toml declares no httpie auth entry point"
    return found.group(1)


def test_the_entry_point_and_extra_are_declared() -> None:
    assert declared_entry_point() == "mauth_client.httpie_mauth:MAuthAuthPlugin"
    assert 'httpie = ["httpie>=3.2"]' in (REPO / "pyproject.toml").read_text()


@pytest.fixture
def http_env(tmp_path: Path) -> dict[str, str]:
    """The environment to run ``http`` in: this checkout's mauth_client first, no MAuth
    settings inherited, HTTPie's config in tmp_path (update checks off: no network)."""
    config_dir = tmp_path / "httpie-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"disable_update_warnings": True}))
    paths = [str(REPO)]
    if not any(ep.name == "mauth" for ep in entry_points(group=GROUP)):
        # The installed metadata predates the plugin (an editable install made before it
        # existed): publish the entry point pyproject.toml declares, from a scratch folder.
        print("installed metadata lacks the httpie entry point; adding it from pyproject.toml")
        info = tmp_path / "meta" / "mauth_client_httpie_probe-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: mauth-client-httpie-probe\nVersion: 0\n"
        )
        points = configparser.ConfigParser()
        points[GROUP] = {"mauth": declared_entry_point()}
        with (info / "entry_points.txt").open("w") as handle:
            points.write(handle)
        paths.append(str(tmp_path / "meta"))
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        HTTPIE_CONFIG_DIR=str(config_dir),
        NO_COLOR="1",
    )
    return env


def http(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``http`` command (the console script beside this Python)."""
    script = Path(sys.executable).parent / "http"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "httpie"]
    return subprocess.run(
        [*command, "--ignore-stdin", "--print=b", "--timeout=30", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def server(service: LocalMAuthService, me: AppIdentity) -> Iterator[str]:
    app = Flask("httpie-test")
    FlaskAuthenticator(app, config=service.config_for(me))

    @app.route("/whoami", methods=["GET", "POST"])
    @requires_authentication
    def whoami() -> Any:
        return jsonify(
            app_uuid=g.mauth_app_uuid,
            version=request.environ["mauth.protocol_version"],
            body=request.get_data(as_text=True),
        )

    with serve_wsgi(app) as url:
        yield url


def test_identity_from_the_environment(
    server: str, caller: AppIdentity, http_env: dict[str, str]
) -> None:
    http_env.update(
        APP_UUID=caller.app_uuid, MAUTH_PRIVATE_KEY=caller.private_key, MAUTH_SIGN_VERSIONS="v2"
    )
    done = http(http_env, "--auth-type=mauth", "POST", f"{server}/whoami", "name=study 1")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["app_uuid"] == caller.app_uuid
    assert seen["version"] == 2
    assert json.loads(seen["body"]) == {"name": "study 1"}


def test_identity_from_dash_dash_auth(
    server: str, caller: AppIdentity, http_env: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "dir:with:colons" / "caller.key"
    key.parent.mkdir()
    key.write_text(caller.private_key)
    auth = f"{caller.app_uuid}:{key}"
    done = http(http_env, "--auth-type=mauth", f"--auth={auth}", "GET", f"{server}/whoami?q=1")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["app_uuid"], seen["version"]) == (
        caller.app_uuid,
        1,
    )  # MAUTH_SIGN_VERSIONS unset: v1


def test_unsigned_and_unknown_callers_are_refused(
    server: str, service: LocalMAuthService, http_env: dict[str, str]
) -> None:
    done = http(http_env, "GET", f"{server}/whoami")
    assert done.returncode == 0 and "errors" in json.loads(
        done.stdout
    )  # 401 without --check-status
    outsider = generate_identity()  # an app the MAuth service does not know
    http_env.update(APP_UUID=outsider.app_uuid, MAUTH_PRIVATE_KEY=outsider.private_key)
    done = http(http_env, "--check-status", "--auth-type=mauth", "GET", f"{server}/whoami")
    assert done.returncode == 4, done.stderr  # HTTPie's exit status for a 4xx
    assert json.loads(done.stdout)["errors"]["mauth"]


def test_missing_identity_is_one_line(server: str, http_env: dict[str, str]) -> None:
    done = http(http_env, "--auth-type=mauth", "GET", f"{server}/whoami")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "http: error: --auth-type=mauth: " in done.stderr and "APP_UUID" in done.stderr
    done = http(http_env, "--auth-type=mauth", "--auth=abc:/nonexistent.key", "GET", server)
    assert "cannot read the key file /nonexistent.key: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr
