"""``mauth-client keygen`` writes only where it should (issue 10 item 12).

Each test reproduces one attack on the key files: an app UUID that is a path
(``a:b``, ``../evil``, an absolute path), a dangling symlink planted at the key's
path, and ``--force`` over an existing world-readable file (the private key must
never sit in a file wider than 0600, and the old file must not be written to)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mauth_client.cli import main

APP = "2c9d6b1a-4e3f-4a5b-8c7d-0e1f2a3b4c5d"


def keygen(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(["keygen", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "app_uuid",
    [
        "a:b",
        "../evil",
        "sub/../../evil",
        "{tmp}/absolute-evil",  # an absolute path, outside --dir
        "",
        "my-app",
        APP + "0",
        APP.replace("-", ""),
        "2c9d6b1a-4e3f-4a5b-8c7d-0e1f2a3b4c5z",
        APP + "\n",
    ],
)
def test_app_uuid_that_is_not_a_uuid_is_refused(
    app_uuid: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    before = tree(tmp_path)
    app_uuid = app_uuid.replace("{tmp}", str(tmp_path))
    code, err = keygen(capsys, "--dir", str(keys), "--app-uuid", app_uuid)
    assert code == 2
    assert "is not a UUID" in err and err.count("\n") == 1
    assert tree(tmp_path) == before  # nothing written, inside --dir or beside it


def test_a_uuid_is_accepted_in_either_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keygen(capsys, "--dir", str(tmp_path), "--app-uuid", APP.upper())[0] == 0
    assert tree(tmp_path) == {f"{APP.upper()}.key", f"{APP.upper()}.pub"}


def test_dangling_symlink_at_the_key_path_is_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    target = tmp_path / "outside" / "stolen.key"
    target.parent.mkdir()
    (keys / f"{APP}.key").symlink_to(target)  # dangling: target does not exist yet
    code, err = keygen(capsys, "--dir", str(keys), "--app-uuid", APP)
    assert code == 2 and "exists; use --force" in err
    assert not target.exists()
    assert (keys / f"{APP}.key").is_symlink()
    # With --force the link itself is replaced by a new file; its target is never created.
    code, _ = keygen(capsys, "--dir", str(keys), "--app-uuid", APP, "--force")
    assert code == 0
    assert not target.exists()
    private = keys / f"{APP}.key"
    assert not private.is_symlink()
    assert stat.S_IMODE(private.lstat().st_mode) == 0o600
    assert "PRIVATE KEY" in private.read_text()


def test_dangling_symlink_at_the_public_key_path_leaves_no_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "elsewhere.pub"
    (tmp_path / f"{APP}.pub").symlink_to(target)
    code, err = keygen(capsys, "--dir", str(tmp_path), "--app-uuid", APP)
    assert code == 2 and "exists; use --force" in err
    assert not target.exists() and not (tmp_path / f"{APP}.key").exists()


def test_force_over_a_world_readable_file_never_widens_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / f"{APP}.key"
    old.write_text("old contents\n")
    os.chmod(old, 0o644)
    # A second name for the old inode: whoever held the old file open (or linked it) sees
    # exactly what was there; the new key never goes through that inode.
    witness = tmp_path / "witness"
    os.link(old, witness)
    old_inode = old.stat().st_ino
    code, _ = keygen(capsys, "--dir", str(tmp_path), "--app-uuid", APP, "--force")
    assert code == 0
    new = old.stat()
    assert new.st_ino != old_inode
    assert stat.S_IMODE(new.st_mode) == 0o600
    assert "PRIVATE KEY" in old.read_text()
    assert witness.read_text() == "old contents\n"
    assert stat.S_IMODE(witness.stat().st_mode) == 0o644  # the old inode was not touched
    # No temporary file is left behind.
    assert tree(tmp_path) == {f"{APP}.key", f"{APP}.pub", "witness"}


def test_new_key_file_is_0600_from_creation_even_with_a_permissive_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = os.umask(0)
    try:
        assert keygen(capsys, "--dir", str(tmp_path), "--app-uuid", APP)[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / f"{APP}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / f"{APP}.pub").stat().st_mode) == 0o644
