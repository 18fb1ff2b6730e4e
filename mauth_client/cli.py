"""The ``mauth-client`` command line (also ``python -m mauth_client``).

    mauth-client keygen                       # a key pair, written to files
    mauth-client sign GET https://host/path   # MAuth headers and a curl command
    mauth-client request GET https://host/path -v
    mauth-client verify --method GET --url ... -H 'MCC-Authentication: ...' ...
    mauth-client serve-keys --keys DIR        # the local MAuth service
    mauth-client demo                         # everything, end to end, no configuration

Configuration comes from the environment (README), or from ``--app-uuid`` and
``--private-key-file``. Problems are one line on stderr and exit status 2, never a
traceback. ``verify`` and ``request`` exit 1 for an inauthentic message.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from ._console import EXIT_ERROR, EXIT_INAUTHENTIC, EXIT_OK, CommandError, Style
from .config import redact_url
from .consts import ALLOWED_DRIFT_SECONDS
from .exceptions import ConfigurationError, InauthenticError, MAuthError, UnableToAuthenticateError

__all__ = ["EXIT_ERROR", "EXIT_INAUTHENTIC", "EXIT_OK", "CommandError", "Style", "main"]


# --- configuration ----------------------------------------------------------------------


def _config(args: argparse.Namespace, *, need_service: bool = False) -> Any:
    from .config import Config

    overrides: dict[str, Any] = {}
    if getattr(args, "app_uuid", None):
        overrides["app_uuid"] = args.app_uuid
    if getattr(args, "private_key_file", None):
        overrides["private_key"] = _read_text(args.private_key_file, "--private-key-file")
    if getattr(args, "versions", None):
        overrides["sign_versions"] = args.versions
    config = Config.from_env(**overrides)
    if need_service:
        config.require("mauth_url")
    return config


def _signer(args: argparse.Namespace) -> Any:
    from .client import build_signer

    config = _config(args)
    return build_signer(config.app_uuid, config.private_key, config.sign_versions, config)[0]


def _read_text(path: str, option: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{option}: cannot read {path}: {_reason(exc)}") from None


def _read_bytes(path: str, option: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _body(args: argparse.Namespace) -> bytes:
    if getattr(args, "data_file", None):
        return _read_bytes(args.data_file, "--data-file")
    data = getattr(args, "data", None)
    return data.encode("utf-8") if data else b""


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip():
            raise CommandError(f"-H {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


# --- URLs -------------------------------------------------------------------------------

_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _check_url(value: str, *, path_ok: bool) -> str:
    """``value`` if it is an ``http(s)://host/...`` URL (or, when ``path_ok``, a path
    starting with ``/``); otherwise a :class:`CommandError` saying which of "not a URL"
    or "malformed URL" it is, so neither is reported as a network failure later."""
    shown = redact_url(value)
    wanted = "http(s)://host/path" + (" or /path" if path_ok else "")
    if path_ok and value.startswith("/") and not value.startswith("//"):
        if _SPACE_OR_CONTROL.search(value):
            raise CommandError(
                f"malformed path {shown!r}: spaces and control characters must be %-encoded"
            )
        return value
    if "://" not in value:
        raise CommandError(f"not a URL: {shown!r} (expected {wanted})")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise CommandError(f"malformed URL {shown!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise CommandError(f"not an HTTP URL: {shown!r} (expected {wanted})")
    if not parts.hostname:
        raise CommandError(f"malformed URL {shown!r}: no host name")
    if _SPACE_OR_CONTROL.search(value):
        raise CommandError(
            f"malformed URL {shown!r}: spaces and control characters must be %-encoded"
        )
    return value


# --- keygen -----------------------------------------------------------------------------


#: What an app UUID looks like (8-4-4-4-12 hex digits); it also names the key files, so
#: nothing else (no ``/``, ``..``, ``:`` or absolute path) may reach the file system.
_APP_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _create(path: Path, content: str, mode: int) -> None:
    """Write a new file at ``path``, failing if anything (a file, a symlink, even a dangling
    one) is there already; the file has ``mode`` from its creation on (never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(content)


def _replace(path: Path, content: str, mode: int) -> None:
    """Put a new file at ``path`` (for ``--force``): written to a fresh file of ``mode`` in
    the same folder, then renamed over ``path``. Whatever was at ``path`` (a world-readable
    file, a symlink) is replaced, never written to or followed."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600; the public key gets 0644
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _next_steps(app_uuid: str, private_path: Path, public_path: Path) -> str:
    folder = shlex.quote(str(public_path.parent))
    return (
        "\nnext steps:\n"
        "  1. register the public key with your MAuth service, for this app UUID:\n"
        f"       {public_path}\n"
        f"     (to test locally: mauth-client serve-keys --keys {folder})\n"
        "  2. give the app its identity in its environment:\n"
        f"       export APP_UUID={app_uuid}\n"
        f"       export MAUTH_PRIVATE_KEY_FILE={shlex.quote(str(private_path.resolve()))}\n"
        "       export MAUTH_URL=https://mauth.example.com   # your MAuth service\n"
        "  3. try it: mauth-client sign GET https://api.example.com/ping --versions v2\n"
    )


def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    from .testing.service import generate_identity

    app_uuid = args.app_uuid if args.app_uuid is not None else str(uuid.uuid4())
    if not _APP_UUID.fullmatch(app_uuid):
        raise CommandError(
            f"--app-uuid {app_uuid[:60]!r} is not a UUID (8-4-4-4-12 hex digits, "
            "e.g. 6f0c2325-0f7d-4a4e-9bb3-5d1f3f0e2a11)"
        )
    folder = Path(args.dir).expanduser()
    private_path = folder / f"{app_uuid}.key"
    public_path = folder / f"{app_uuid}.pub"
    if not args.force:
        for path in (private_path, public_path):
            if os.path.lexists(path):
                raise CommandError(f"{path} exists; use --force to replace it")
    identity = generate_identity(app_uuid, bits=args.bits)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if args.force:
            _replace(private_path, identity.private_key, 0o600)
            _replace(public_path, identity.public_key, 0o644)
        else:
            _create(private_path, identity.private_key, 0o600)
            try:
                _create(public_path, identity.public_key, 0o644)
            except BaseException:
                private_path.unlink(missing_ok=True)
                raise
    except FileExistsError as exc:
        raise CommandError(f"{exc.filename} exists; use --force to replace it") from None
    except OSError as exc:
        raise CommandError(f"cannot write the keys to {folder}: {_reason(exc)}") from None
    print(f"app UUID:    {identity.app_uuid}", file=sys.stderr)
    print(f"private key: {private_path} (mode 0600)", file=sys.stderr)
    print(f"public key:  {public_path}", file=sys.stderr)
    print(_next_steps(identity.app_uuid, private_path, public_path), file=sys.stderr, end="")
    out.write(identity.public_key)
    return EXIT_OK


# --- sign -------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace, out: TextIO) -> int:
    from .signable import RequestSignable

    _check_url(args.url, path_ok=True)
    signer = _signer(args)
    body = _body(args)
    headers = signer.signed_headers(
        RequestSignable(method=args.method.upper(), url=args.url, body=body)
    )
    for name, value in headers.items():
        out.write(f"{name}: {value}\n")
    parts = ["curl", "-X", args.method.upper()]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    if args.data_file:
        parts += ["--data-binary", f"@{args.data_file}"]
    elif args.data:
        parts += ["--data-binary", args.data]
    parts.append(args.url)
    out.write("\n" + " ".join(shlex.quote(part) for part in parts) + "\n")
    return EXIT_OK


# --- request ----------------------------------------------------------------------------


def cmd_request(args: argparse.Namespace, out: TextIO) -> int:
    import requests

    from .requests_mauth import MAuth

    _check_url(args.url, path_ok=False)
    config = _config(args, need_service=args.authenticate_response)
    auth = MAuth(
        config.app_uuid,
        config.private_key,
        config.sign_versions,
        authenticate_responses=args.authenticate_response,
        config=config,
    )
    body = args.body.encode("utf-8") if args.body is not None else _body(args)
    err = sys.stderr
    try:
        response = requests.request(
            args.method.upper(),
            args.url,
            data=body or None,
            headers=_headers(args.header),
            auth=auth,
            timeout=(config.connect_timeout, config.read_timeout),
        )
    except InauthenticError as exc:
        print(f"inauthentic response: {exc}", file=err)
        return EXIT_INAUTHENTIC
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as exc:
        raise CommandError(
            f"malformed URL {redact_url(args.url)!r}: {type(exc).__name__}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise CommandError(
            f"could not reach {redact_url(args.url)}: {type(exc).__name__}"
        ) from None
    if args.verbose:
        request = response.request
        print(f"> {request.method} {request.path_url} HTTP/1.1", file=err)
        for name, value in request.headers.items():
            print(f"> {name}: {value}", file=err)
        print(">", file=err)
        print(f"< HTTP/1.1 {response.status_code} {response.reason}", file=err)
        for name, value in response.headers.items():
            print(f"< {name}: {value}", file=err)
        print("<", file=err)
    elif not args.quiet:
        print(f"HTTP {response.status_code} {response.reason}", file=err)
    if args.authenticate_response and not args.quiet:
        print(f"response signed by app {getattr(response, 'mauth_app_uuid', '?')}", file=err)
    out.write(response.text)
    if response.text and not response.text.endswith("\n"):
        out.write("\n")
    return EXIT_INAUTHENTIC if response.status_code >= 400 else EXIT_OK


# --- verify -----------------------------------------------------------------------------


def _parse_raw_request(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """A captured HTTP/1.x request: request line, headers, blank line, body."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].split()
    if len(parts) < 2:
        raise CommandError("--request-file: the first line must be 'METHOD TARGET HTTP/1.1'")
    return parts[0], parts[1], _headers([line for line in lines[1:] if line.strip()]), body


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    from .authenticator import Authenticator
    from .key_source import StaticKeySource
    from .keys import load_public_key
    from .signable import RequestSignable
    from .signed import Signed

    if args.request_file:
        method, url, headers, body = _parse_raw_request(
            _read_bytes(args.request_file, "--request-file")
        )
    else:
        if not args.method or not args.url:
            raise CommandError("give --method and --url (or --request-file)")
        _check_url(args.url, path_ok=True)
        method, url, headers, body = (
            args.method.upper(),
            args.url,
            _headers(args.header),
            _body(args),
        )
    signed = Signed.from_headers(headers)
    if signed.protocol_version() is None:
        out.write(
            "inauthentic: the request carries no MAuth headers "
            "(X-MWS-Authentication / MCC-Authentication)\n"
        )
        return EXIT_INAUTHENTIC
    clock = (lambda: float(args.now)) if args.now is not None else time.time
    wide = 10**12 if args.ignore_time else None  # --ignore-time: any signing time passes
    if args.public_key:
        key = load_public_key(_read_text(args.public_key, "--public-key"))
        apps = {info.app_uuid: key for info in (signed.v1, signed.v2) if info and info.app_uuid}
        authenticator = Authenticator(
            StaticKeySource(apps),
            clock=clock,
            v2_only=args.v2_only,
            disable_fallback_to_v1=args.no_fallback,
            time_window=wide or ALLOWED_DRIFT_SECONDS,
        )
    else:
        config = _config(args, need_service=True)
        base = Authenticator.from_config(config, clock=clock)
        authenticator = Authenticator(
            base.key_source,
            ticket_checker=base.ticket_checker,
            clock=clock,
            v2_only=args.v2_only or base.v2_only,
            disable_fallback_to_v1=args.no_fallback or base.disable_fallback_to_v1,
            time_window=wide or base.time_window,
        )
    try:
        result = authenticator.authenticate(
            RequestSignable(method=method, url=url, body=body), signed
        )
    except InauthenticError as exc:
        out.write(f"inauthentic: {exc}\n")
        return EXIT_INAUTHENTIC
    out.write(f"authentic: app {result.app_uuid}, MAuth V{result.protocol_version}\n")
    return EXIT_OK


# --- serve-keys and demo ----------------------------------------------------------------


def cmd_serve_keys(args: argparse.Namespace, out: TextIO) -> int:
    from .testing.__main__ import main as serve

    if not Path(args.keys).is_dir():
        raise CommandError(f"--keys {args.keys} is not a folder")

    argv = [
        "--keys",
        args.keys,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--max-age",
        str(args.max_age),
    ]
    return serve(argv)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo import run_demo

    return run_demo(out, Style(out))


# --- the parser -------------------------------------------------------------------------


def _add_identity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-uuid", help="this app's UUID (default: APP_UUID / MAUTH_APP_UUID)")
    parser.add_argument(
        "--private-key-file", help="this app's private key (default: MAUTH_PRIVATE_KEY...)"
    )
    parser.add_argument("--versions", help="v1, v2 or v1,v2 (default: MAUTH_SIGN_VERSIONS or v1)")


def _add_body(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--data", help="the body, as text")
    group.add_argument("--data-file", help="the body, from a file (binary is fine)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TCP port (1-65535, or 0 for any free one)"
        )
    return port


def _at_least(minimum: int) -> Any:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value

    return check


#: Each subcommand's one-line description: the list in ``--help`` and its own ``--help``.
SUMMARIES = {
    "keygen": "make an app's RSA key pair; prints the next steps",
    "sign": "print a request's MAuth headers and a curl command",
    "request": "send a signed request and print the answer",
    "verify": "check a captured request; say exactly why it fails",
    "serve-keys": "run the local MAuth service over a key folder",
    "demo": "show MAuth end to end on this machine, no setup",
}


class _Formatter(argparse.HelpFormatter):
    """Room for "serve-keys" beside its description, so each command's line stays one line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=90)
        self._action_max_length = 16


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mauth-client",
        formatter_class=_Formatter,
        description="Sign, send and verify MAuth-authenticated HTTP requests.",
        epilog="Configuration: APP_UUID, MAUTH_PRIVATE_KEY (or MAUTH_PRIVATE_KEY_FILE), "
        "MAUTH_URL, MAUTH_SIGN_VERSIONS... (see the README). Try: mauth-client demo",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str) -> argparse.ArgumentParser:
        summary = SUMMARIES[name]
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=summary, description=summary, formatter_class=_Formatter
        )
        return sub

    keygen = command("keygen")
    keygen.add_argument("--bits", type=_at_least(2048), default=2048, help="key size (>= 2048)")
    keygen.add_argument("--dir", default=".", help="where to write <app_uuid>.key and .pub")
    keygen.add_argument("--app-uuid", help="the app UUID (default: a new random one)")
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    keygen.set_defaults(handler=cmd_keygen)

    sign = command("sign")
    sign.add_argument("method")
    sign.add_argument("url", help="http(s)://host/path?query, or /path?query")
    _add_body(sign)
    _add_identity(sign)
    sign.set_defaults(handler=cmd_sign)

    request = command("request")
    request.add_argument("method")
    request.add_argument("url", help="http(s)://host/path?query")
    request.add_argument("body", nargs="?", help="the body, as text")
    _add_body(request)
    request.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    request.add_argument("-v", "--verbose", action="store_true", help="show both sides' headers")
    request.add_argument("-q", "--quiet", action="store_true", help="print only the body")
    request.add_argument(
        "--authenticate-response",
        action="store_true",
        help="require a valid MAuth signature on the response (needs MAUTH_URL)",
    )
    _add_identity(request)
    request.set_defaults(handler=cmd_request)

    verify = command("verify")
    verify.add_argument("--method")
    verify.add_argument("--url", help="the URL or /path?query as sent")
    verify.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    _add_body(verify)
    verify.add_argument("--request-file", help="a raw captured HTTP/1.1 request instead")
    verify.add_argument("--public-key", help="the sender's public key (default: ask MAUTH_URL)")
    when = verify.add_mutually_exclusive_group()
    when.add_argument("--now", type=int, help="check the time window as if it were this epoch time")
    when.add_argument("--ignore-time", action="store_true", help="skip the time window")
    verify.add_argument("--v2-only", action="store_true", help="reject messages without V2")
    verify.add_argument("--no-fallback", action="store_true", help="no V1 retry after V2 fails")
    _add_identity(verify)
    verify.set_defaults(handler=cmd_verify)

    serve = command("serve-keys")
    serve.add_argument("--keys", required=True, help="folder of <app_uuid>.pub files")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=7400, help="TCP port (default 7400)")
    serve.add_argument("--max-age", type=_at_least(0), default=300, help="key cache seconds")
    serve.set_defaults(handler=cmd_serve_keys)

    demo = command("demo")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _fail(message: str) -> NoReturn:
    print(f"mauth-client: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        code: int = args.handler(args, sys.stdout)
        return code
    except CommandError as exc:
        _fail(str(exc))
    except ConfigurationError as exc:
        _fail(str(exc))
    except UnableToAuthenticateError as exc:
        _fail(f"the MAuth service could not answer: {exc}")
    except MAuthError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
