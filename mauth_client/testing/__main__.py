"""``python -m mauth_client.testing --keys DIR --port N``: serve a folder of public keys."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .service import LocalMAuthService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mauth_client.testing",
        description="Run a local MAuth service over a folder of <app_uuid>.pub files.",
    )
    parser.add_argument("--keys", required=True, type=Path, help="folder of <app_uuid>.pub files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7400)
    parser.add_argument("--max-age", type=int, default=300, help="Cache-Control max-age of keys")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every call so")
    parser.add_argument(
        "--no-caller-auth",
        action="store_true",
        help="answer unsigned callers too (the real service does not)",
    )
    args = parser.parse_args(argv)
    if not args.keys.is_dir():
        print(f"error: --keys {args.keys} is not a folder", file=sys.stderr)
        return 2
    service = LocalMAuthService(
        keys_dir=args.keys,
        host=args.host,
        port=args.port,
        max_age=args.max_age,
        latency=args.latency,
        fail_status=args.fail_status,
        authenticate_callers=not args.no_caller_auth,
    )
    try:
        service.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"local MAuth service on {service.url} serving {args.keys}/<app_uuid>.pub "
        "(MAUTH_URL for clients); Ctrl-C stops it",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
