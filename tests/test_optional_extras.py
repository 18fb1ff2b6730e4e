"""A missing optional dependency says which extra to install (issue 9 item 4).

Each case runs a fresh interpreter in which the dependency cannot be imported (a
``sys.meta_path`` finder raises ``ImportError`` for it, as a missing package would;
nothing is uninstalled) and imports the adapter module."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: (adapter module, a package it needs, the extra that installs it). A new adapter with an
#: optional dependency adds its row here (see CONTRIBUTING.md).
CASES = [
    ("mauth_client.httpx_mauth", "httpx", "httpx"),
    ("mauth_client.httpx_mauth", "anyio", "httpx"),
    ("mauth_client.flask_authenticator", "flask", "flask"),
    ("mauth_client.django", "django", "django"),
    ("mauth_client.httpie_mauth", "httpie", "httpie"),
    ("mauth_client.aiohttp_mauth", "aiohttp", "aiohttp"),
    ("mauth_client.aiohttp_mauth", "anyio", "aiohttp"),
    ("mauth_client.fastapi_mauth", "starlette", "fastapi"),
    ("mauth_client.fastapi_mauth", "anyio", "fastapi"),
]

PROBE = textwrap.dedent(
    """
    import importlib, sys

    BLOCKED = sys.argv[2]

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name == BLOCKED or name.startswith(BLOCKED + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    try:
        importlib.import_module(sys.argv[1])
    except ImportError as exc:
        print(type(exc).__name__, isinstance(exc, ModuleNotFoundError), exc.name, sep="|")
        print(exc)
    else:
        print("imported")
    """
)


@pytest.mark.parametrize(("module", "blocked", "extra"), CASES)
def test_missing_dependency_names_the_extra(module: str, blocked: str, extra: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, blocked],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == f"ModuleNotFoundError|True|{blocked}"
    assert message == (
        f"{module} needs {blocked}, which is not installed: pip install 'mauth-client[{extra}]'"
    )


@pytest.mark.parametrize("module", sorted({case[0] for case in CASES}))
def test_the_module_imports_when_nothing_is_missing(module: str) -> None:
    # The probe itself: with an unrelated package blocked, the module imports.
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, "no_such_package_here"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.stdout.strip() == "imported", done.stdout + done.stderr


BLOCKER = textwrap.dedent(
    """
    import sys

    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name == {blocked!r} or name.startswith({blocked!r} + "."):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    """
)


def run_blocked(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_demo_without_flask_names_the_extra() -> None:
    done = run_blocked("flask", "from mauth_client.cli import main; sys.exit(main(['demo']))")
    assert done.returncode == 2
    assert done.stderr == (
        "mauth-client: error: the demo needs Flask: pip install 'mauth-client[flask]'\n"
    )


def test_kms_key_without_boto3_names_the_extra() -> None:
    done = run_blocked(
        "boto3",
        """
        from mauth_client.config import decrypt_kms_private_key
        from mauth_client.exceptions import ConfigurationError
        try:
            decrypt_kms_private_key("AAAA")
        except ConfigurationError as exc:
            print(exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'mauth-client[aws]'" in done.stdout
