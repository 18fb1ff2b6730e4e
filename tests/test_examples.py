"""Every example in examples/ runs as written, from a clean process, and says what it did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
EXPECTED = {
    "sign_request.py": "V1 signature verifies: True; V2 signature verifies: True",
    "flask_app.py": "health check: 200 OK",
    "wsgi_middleware.py": "exempt /app_status: 200",
    "asgi_starlette.py": "unsigned: 401",
    "lambda_handler.py": "tampered event: 401",
    "django_views.py": "optional, unsigned: 200",
    "fastapi_dependency.py": "open route: 200",
    "aiohttp_app.py": "exempt /health: 200",
}


def test_every_example_is_listed() -> None:
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(example: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert EXPECTED[example.name] in done.stdout
    assert "Traceback" not in done.stderr
