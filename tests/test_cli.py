"""The mauth-client command line: every subcommand, its errors and exit statuses."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request

from mauth_client.cli import Style, main
from mauth_client.config import ENV_NAMES
from mauth_client.flask_authenticator import FlaskAuthenticator, requires_authentication
from mauth_client.testing import AppIdentity, LocalMAuthService, serve_wsgi

CONFIG_NAMES = ENV_NAMES


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONFIG_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def caller(service: LocalMAuthService, monkeypatch: pytest.MonkeyPatch) -> AppIdentity:
    identity = service.new_app()
    monkeypatch.setenv("APP_UUID", identity.app_uuid)
    monkeypatch.setenv("MAUTH_PRIVATE_KEY", identity.private_key)
    monkeypatch.setenv("MAUTH_URL", service.url)
    monkeypatch.setenv("MAUTH_SIGN_VERSIONS", "v1,v2")
    return identity


@pytest.fixture
def server(service: LocalMAuthService) -> Iterator[str]:
    me = service.new_app()
    app = Flask("cli-test")
    FlaskAuthenticator(app, config=service.config_for(me), sign_responses=True)

    @app.route("/echo", methods=["GET", "POST"])
    @requires_authentication
    def echo() -> Any:
        return jsonify(body=request.get_data(as_text=True), extra=request.headers.get("X-Extra"))

    @app.get("/unsigned")
    def unsigned() -> Any:
        return "plain"

    with serve_wsgi(app) as url:
        yield url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def headers_from(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("X-MWS", "MCC-"))]


# --- keygen -------------------------------------------------------------------------------


MY_APP = "0b6f3c1e-5a7d-4e2b-9c3f-1d2e3f4a5b6c"


def test_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keygen", "--dir", str(tmp_path), "--app-uuid", MY_APP)
    assert code == 0
    private, public = tmp_path / f"{MY_APP}.key", tmp_path / f"{MY_APP}.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert out == public.read_text() and out.startswith("-----BEGIN PUBLIC KEY-----")
    assert "BEGIN RSA PRIVATE KEY" in private.read_text()
    assert MY_APP in err
    code, _, err = run(capsys, "keygen", "--dir", str(tmp_path), "--app-uuid", MY_APP)
    assert code == 2 and "use --force" in err
    assert run(capsys, "keygen", "--dir", str(tmp_path), "--app-uuid", MY_APP, "--force")[0] == 0
    code, _, err = run(capsys, "keygen", "--bits", "1024")
    assert code == 2 and err.count("\n") == 1 and "--bits" in err


def test_keygen_says_what_to_do_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keygen", "--dir", str(tmp_path), "--app-uuid", MY_APP)
    assert code == 0
    assert "register the public key" in err and f"{MY_APP}.pub" in err
    assert f"export APP_UUID={MY_APP}" in err
    assert f"export MAUTH_PRIVATE_KEY_FILE={tmp_path.resolve() / MY_APP}.key" in err
    assert "export MAUTH_URL=" in err
    assert f"mauth-client serve-keys --keys {tmp_path}" in err


# --- sign and verify ------------------------------------------------------------------------


def test_sign_then_verify_with_a_public_key(
    tmp_path: Path, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sign", "post", "https://api.example.com/x?b=2&a=1", "--data", "hi")
    assert code == 0
    headers = headers_from(out)
    assert len(headers) == 4
    assert out.splitlines()[-1].startswith("curl -X POST -H ")
    assert "--data-binary hi" in out and "https://api.example.com/x?b=2&a=1" in out
    key = tmp_path / "caller.pub"
    key.write_text(caller.public_key)
    args = [
        "verify",
        "--method",
        "POST",
        "--url",
        "/x?b=2&a=1",
        "--data",
        "hi",
        "--public-key",
        str(key),
    ]
    for header in headers:
        args += ["-H", header]
    code, out, _ = run(capsys, *args)
    assert (code, out) == (0, f"authentic: app {caller.app_uuid}, MAuth V2\n")
    code, out, _ = run(capsys, *[a if a != "hi" else "HI" for a in args])
    assert code == 1
    # The URL has a query, which V1 does not sign: no V1 fallback (issue 10 item 4).
    assert out.startswith("inauthentic: Signature verification failed for V2")


def test_verify_explains_time_and_can_ignore_it(
    tmp_path: Path, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "caller.pub"
    key.write_text(caller.public_key)
    _, out, _ = run(capsys, "sign", "GET", "/old", "--versions", "v2")
    headers = [arg for header in headers_from(out) for arg in ("-H", header)]
    base = ["verify", "--method", "GET", "--url", "/old", "--public-key", str(key), *headers]
    later = str(int(time.time()) + 3600)
    code, out, _ = run(capsys, *base, "--now", later)
    assert code == 1 and "Time verification failed. MCC-Time is 3600 seconds old" in out
    code, out, _ = run(capsys, *base, "--ignore-time")
    assert code == 0


def test_verify_a_raw_request_file_against_the_service(
    tmp_path: Path, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "sign", "PUT", "https://h.example/files/a%20b", "--data", "x=1")
    raw = "PUT /files/a%20b HTTP/1.1\r\nHost: h.example\r\n" + "".join(
        h + "\r\n" for h in headers_from(out)
    )
    path = tmp_path / "capture.http"
    path.write_bytes(raw.encode() + b"\r\nx=1")
    code, out, _ = run(capsys, "verify", "--request-file", str(path))
    assert (code, out) == (0, f"authentic: app {caller.app_uuid}, MAuth V2\n")


def test_verify_without_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = tmp_path / "k.pub"
    key.write_text("unused")
    code, out, _ = run(capsys, "verify", "--method", "GET", "--url", "/", "--public-key", str(key))
    assert code == 1 and "carries no MAuth headers" in out


# --- request ----------------------------------------------------------------------------------


def test_request_prints_the_answer(
    server: str, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "request", "POST", f"{server}/echo", "hello", "-H", "X-Extra: 42")
    assert code == 0
    assert json.loads(out) == {"body": "hello", "extra": "42"}
    assert err.startswith("HTTP 200")


def test_request_quiet_and_verbose(
    server: str, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "request", "GET", f"{server}/echo", "-q")
    assert code == 0 and err == "" and json.loads(out)["body"] == ""
    code, out, err = run(capsys, "request", "GET", f"{server}/echo", "-v")
    assert "> GET /echo HTTP/1.1" in err and "> MCC-Authentication: MWSV2 " in err
    assert "< HTTP/1.1 200 OK" in err and "< MCC-Authentication: MWSV2 " in err


def test_request_authenticates_responses(
    server: str, caller: AppIdentity, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "request", "GET", f"{server}/echo", "--authenticate-response")
    assert code == 0 and "response signed by app" in err
    code, _, err = run(capsys, "request", "GET", f"{server}/unsigned", "--authenticate-response")
    assert code == 1 and "inauthentic response: Authentication Failed. No mAuth signature" in err


def test_request_exit_status_on_http_errors(
    server: str,
    caller: AppIdentity,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_UUID", "not-registered")
    code, out, err = run(capsys, "request", "GET", f"{server}/echo")
    assert code == 1 and err.startswith("HTTP 401") and "errors" in out


# --- errors: one line, exit 2, no traceback -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sign", "GET", "/x"], "set APP_UUID (or MAUTH_APP_UUID) and MAUTH_PRIVATE_KEY"),
        (
            ["sign", "GET", "/x", "--app-uuid", "a", "--private-key-file", "/nonexistent.pem"],
            "--private-key-file: cannot read /nonexistent.pem: No such file or directory",
        ),
        (
            ["sign", "GET", "/x", "--app-uuid", "a", "--data-file", "/nonexistent"],
            "MAUTH_PRIVATE_KEY",
        ),
        (
            [
                "request",
                "GET",
                "http://127.0.0.1:9/x",
                "--app-uuid",
                "a",
                "--authenticate-response",
            ],
            "set MAUTH_URL",
        ),
        (["verify", "--method", "GET"], "give --method and --url"),
        # bad ports, non-URLs and malformed URLs: one line naming the problem (issue 9 item 4)
        (["serve-keys", "--keys", ".", "--port", "99999"], "'99999' is not a TCP port"),
        (["serve-keys", "--keys", ".", "--port", "http"], "'http' is not a TCP port"),
        (["serve-keys", "--keys", "/nonexistent"], "--keys /nonexistent is not a folder"),
        (["sign", "GET", "hello"], "not a URL: 'hello'"),
        (["sign", "GET", "example.com/x"], "not a URL: 'example.com/x'"),
        (["sign", "GET", "ftp://example.com/x"], "not an HTTP URL"),
        (["request", "GET", "/x"], "not a URL: '/x' (expected http(s)://host/path)"),
        (["request", "GET", "http://[::1/x"], "malformed URL 'http://[::1/x'"),
        (["request", "GET", "http://127.0.0.1:99999/x"], "malformed URL"),
        (["request", "GET", "http:///x"], "malformed URL 'http:///x': no host name"),
        (["request", "GET", "http://a b/x"], "malformed URL"),
        (["request", "GET", "http://u:secret@[::1/x"], "malformed URL 'http://***@[::1/x'"),
        (["verify", "--method", "GET", "--url", "x y"], "not a URL"),
        (["verify", "--bogus"], "unrecognized arguments: --bogus"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert "could not reach" not in err and "secret" not in err


def test_every_subcommand_has_a_one_line_description(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    described = {}
    for line in out.splitlines():
        words = line.split(maxsplit=1)
        if line.startswith("    ") and len(words) == 2:
            described[words[0]] = words[1]
    assert set(described) == {"keygen", "sign", "request", "verify", "serve-keys", "demo"}
    assert all(len(text.split()) >= 4 for text in described.values()), described
    for name, text in described.items():
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and text in out


def test_bad_key_and_unreachable_host(
    caller: AppIdentity, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
    code, _, err = run(capsys, "sign", "GET", "/x", "--private-key-file", str(bad))
    assert code == 2 and "could not be parsed" in err and "AAAA" not in err
    code, _, err = run(capsys, "request", "GET", "http://127.0.0.1:9/x")
    assert code == 2 and "could not reach http://127.0.0.1:9/x: ConnectionError" in err


def test_unreachable_mauth_service(
    caller: AppIdentity,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, out, _ = run(capsys, "sign", "GET", "/x")
    monkeypatch.setenv("MAUTH_URL", "http://127.0.0.1:9")
    headers = [arg for header in headers_from(out) for arg in ("-H", header)]
    code, _, err = run(capsys, "verify", "--method", "GET", "--url", "/x", *headers)
    assert code == 2 and "the MAuth service could not answer" in err and err.count("\n") == 1


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "demo" in err


# --- demo, colour, entry points -----------------------------------------------------------


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0
    assert "8 of 8 outcomes as expected" in out
    assert "\033[" not in out  # not a terminal: no colour


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Style(_Terminal()).good("ok") == "\033[32mok\033[0m"
    assert Style(io.StringIO()).good("ok") == "ok"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style(_Terminal()).good("ok") == "ok"


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_NAMES}
    done = subprocess.run(
        [sys.executable, "-m", "mauth_client", "sign", "GET", "/x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "APP_UUID" in done.stderr
    # The console script of this interpreter's environment (a venv's bin is not always on PATH).
    beside = Path(sys.executable).parent / "mauth-client"
    script = str(beside) if beside.exists() else shutil.which("mauth-client") or str(beside)
    done = subprocess.run(
        [script, "keygen", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0 and "BEGIN PUBLIC KEY" in done.stdout


def test_serve_keys(tmp_path: Path) -> None:
    from mauth_client.config import Config
    from mauth_client.key_source import LocalKeySource

    from .servers import running_command
    from .test_key_source import closed_port

    svc_app = "5e1d0c2b-3a4f-4b6c-8d7e-9f0a1b2c3d4e"
    assert main(["keygen", "--dir", str(tmp_path), "--app-uuid", svc_app]) == 0
    port = closed_port()
    argv = ["-m", "mauth_client", "serve-keys", "--keys", str(tmp_path), "--port", str(port)]
    with running_command(argv, ready=f"http://127.0.0.1:{port}"):
        config = Config(
            app_uuid=svc_app,
            private_key=(tmp_path / f"{svc_app}.key").read_text(),
            mauth_url=f"http://127.0.0.1:{port}",
        )
        LocalKeySource(config).get_public_key(svc_app)
