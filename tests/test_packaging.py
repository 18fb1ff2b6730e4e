"""The sdist: built without warnings, PEP 639 licence metadata, and everything needed to run
the test suite from it (tests, vectors, examples, conftest, helpers) plus the docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Not source: caches, build output, local virtual environments.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    ".venv",
    ".tox",
    ".*_cache",
    ".hypothesis",
    ".upstream-venv",
)

#: Named one by one, so a MANIFEST.in that loses them fails here.
REQUIRED = {
    "README.md",
    "CHANGELOG.md",
    "CONTRIBUTING.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/servers.py",
    "tests/vectors/README.md",
    "tests/vectors/requests.json",
    "tests/vectors/responses.json",
    "tests/vectors/signing-key.pem",
    "tests/vectors/signing-key.pub.pem",
    "examples/flask_app.py",
    "mauth_client/__init__.py",
    "mauth_client/py.typed",
}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Build the sdist from a copy of the source tree (the checkout stays untouched)."""
    work = tmp_path_factory.mktemp("sdist")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    command = [sys.executable, "-m", "build", "--sdist", "--no-isolation"]
    done = subprocess.run(
        [*command, "--outdir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (archive,) = (work / "dist").glob("mauth_client-*.tar.gz")
    return archive, done.stdout + done.stderr


def _members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    return {name.split("/", 1)[1] for name in names}


def test_sdist_builds_without_warnings(sdist: tuple[Path, str]) -> None:
    _, log = sdist
    assert "warning" not in log.lower(), log


def test_sdist_holds_the_docs_tests_vectors_and_examples(sdist: tuple[Path, str]) -> None:
    archive, _ = sdist
    members = _members(archive)
    assert members >= REQUIRED, sorted(REQUIRED - members)
    # Every file of the source tree's tests/ and examples/ folders, whatever a later change adds.
    for folder in ("tests", "examples"):
        files = {
            path.relative_to(REPO).as_posix()
            for path in (REPO / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert files, folder
        assert files <= members, sorted(files - members)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in members)


def test_sdist_licence_metadata_is_pep_639(sdist: tuple[Path, str]) -> None:
    archive, _ = sdist
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        handle = tar.extractfile(f"{top}/PKG-INFO")
        assert handle is not None
        metadata = handle.read().decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert (
        "License :: OSI Approved" not in metadata
    )  # a classifier beside an expression is deprecated
