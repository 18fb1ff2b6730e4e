"""Permissions (dict, JSON, TOML, callable), rules and the issue-13 settings, without servers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mauth_client.config import Config
from mauth_client.exceptions import ConfigurationError
from mauth_client.permissions import (
    PermissionLookupError,
    Permissions,
    Rules,
    load_permissions,
    load_permissions_file,
    required_permissions,
)

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"


def test_mapping_grants_and_unknown_app_gets_none() -> None:
    grants = load_permissions({A: ["studies:read", "studies:write"], B: []})
    assert grants is not None
    assert grants.granted(A) == {"studies:read", "studies:write"}
    assert grants.granted(B) == frozenset()
    assert grants.granted("someone-else") == frozenset()


def test_json_file(tmp_path: Path) -> None:
    file = tmp_path / "perms.json"
    file.write_text(json.dumps({A: ["admin"], B: ["studies:read"]}))
    grants = load_permissions(str(file))
    assert grants is not None
    assert grants.granted(A) == {"admin"}
    assert grants.granted(B) == {"studies:read"}


def test_toml_file(tmp_path: Path) -> None:
    file = tmp_path / "perms.toml"
    file.write_text(f'{A} = ["admin", "studies:write"]\n"{B}" = []\n')
    grants = load_permissions(file)  # a Path works too
    assert grants is not None
    assert grants.granted(A) == {"admin", "studies:write"}
    assert grants.granted(B) == frozenset()


def test_only_a_callable_may_block() -> None:
    mapping, function = load_permissions({A: ["x"]}), load_permissions(lambda app_uuid: [])
    assert mapping is not None and function is not None
    assert (mapping.may_block, function.may_block) == (False, True)


def test_callable_is_asked_per_app() -> None:
    asked: list[str] = []

    def lookup(app_uuid: str) -> list[str]:
        asked.append(app_uuid)
        return ["x"] if app_uuid == A else []

    grants = load_permissions(lookup)
    assert grants is not None
    assert grants.granted(A) == {"x"}
    assert grants.granted(B) == frozenset()
    assert asked == [A, B]


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [("admin", "str"), (42, "int"), ([1], "strings")],
)
def test_callable_answering_nonsense_is_a_lookup_error(answer: object, fragment: str) -> None:
    grants = Permissions(lookup=lambda app_uuid: answer)  # type: ignore[arg-type,return-value]
    with pytest.raises(PermissionLookupError, match=fragment):
        grants.granted(A)


def test_async_callable_is_refused_clearly() -> None:
    async def lookup(app_uuid: str) -> list[str]:
        return ["admin"]

    grants = Permissions(lookup=lookup)  # type: ignore[arg-type]
    with pytest.raises(PermissionLookupError, match="coroutine"):
        grants.granted(A)


def test_raising_callable_is_a_lookup_error_keeping_the_cause() -> None:
    def lookup(app_uuid: str) -> list[str]:
        raise RuntimeError("authorization service down")

    with pytest.raises(PermissionLookupError, match="authorization service down") as caught:
        Permissions(lookup=lookup).granted(A)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_json_parse_error_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "perms.json"
    file.write_text('{\n  "a": ["x"],\n  "b": ["y"\n}\n')
    with pytest.raises(ConfigurationError) as caught:
        load_permissions_file(file)
    message = str(caught.value)
    assert str(file) in message
    assert "line 4" in message


def test_toml_parse_error_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "perms.toml"
    file.write_text('a = ["x"]\nb = [\n"y" "z"]\n')
    with pytest.raises(ConfigurationError) as caught:
        load_permissions_file(file)
    message = str(caught.value)
    assert str(file) in message
    assert "line 3" in message


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([A], "must map app UUIDs"),
        ({A: "admin"}, repr(A)),
        ({A: ["ok", 3]}, "3"),
        ({A: ["ok"], B: {"nested": True}}, repr(B)),
    ],
)
def test_wrong_shape_names_file_and_key(tmp_path: Path, document: object, fragment: str) -> None:
    file = tmp_path / "perms.json"
    file.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError) as caught:
        load_permissions_file(file)
    assert str(file) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        Config(permissions=str(missing))
    assert str(missing) in str(caught.value)


def test_bad_file_fails_when_the_config_is_built_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "perms.toml"
    file.write_text("[not closed\n")
    with pytest.raises(ConfigurationError, match=r"perms\.toml"):
        Config.from_env({"MAUTH_PERMISSIONS_FILE": str(file)})


def test_edited_file_is_read_again(tmp_path: Path) -> None:
    file = tmp_path / "perms.json"
    file.write_text(json.dumps({A: ["one"]}))
    assert load_permissions_file(file).granted(A) == {"one"}
    file.write_text(json.dumps({A: ["one", "two"]}))
    assert load_permissions_file(file).granted(A) == {"one", "two"}


def test_permissions_of_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="not int"):
        Config(permissions=5)  # type: ignore[arg-type]


# --- rules ------------------------------------------------------------------------------


RULES = [
    ("POST", "/studies/*", "studies:write"),
    ("*", "/admin/*", "admin"),
    ("GET", "/reports", "reports:read"),
    ("delete", "/studies/*", "studies:delete"),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/studies/1", {"studies:write"}),
        ("GET", "/studies/1", set()),
        ("DELETE", "/studies/1", {"studies:delete"}),
        ("PUT", "/admin/users", {"admin"}),
        ("GET", "/admin/", {"admin"}),
        ("GET", "/reports", {"reports:read"}),
        ("GET", "/reports/", {"reports:read"}),  # an exact path with a trailing slash
        ("HEAD", "/reports", {"reports:read"}),  # frameworks serve HEAD with the GET view
        ("GET", "/reports/2024", set()),
        ("GET", "/other", set()),
        ("post", "/studies/1", {"studies:write"}),
    ],
)
def test_rule_matching(method: str, path: str, expected: set[str]) -> None:
    assert Rules(RULES).required(method, path) == expected


@pytest.mark.parametrize(
    "path",
    ["/%61dmin/users", "/public/../admin/users", "//admin/users", "/admin%2Fusers", "/./admin/x"],
)
def test_encoded_or_dotted_paths_cannot_dodge_a_rule(path: str) -> None:
    assert "admin" in Rules(RULES).required("GET", path)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        (("GE T", "/x", "p"), "not an HTTP method"),
        (("", "/x", "p"), "not an HTTP method"),
        (("GET", "x/*", "p"), "must be a path"),
        (("GET", "/a/*/b", "p"), "must be a path"),
        (("GET", "/a?b=1", "p"), "must be a path"),
        (("GET", "/a", " "), "permission is empty"),
        (("GET", "/a"), "three strings"),
        ("GET /a p", "must be (method"),
    ],
)
def test_invalid_rules_are_refused(rule: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match="rule 1") as caught:
        Rules([("GET", "/ok", "p"), rule])  # type: ignore[list-item]
    assert fragment in str(caught.value)


def test_decorator_permissions_must_be_a_collection_of_strings() -> None:
    assert required_permissions({"a", "b"}) == {"a", "b"}
    assert required_permissions(None) == frozenset()
    with pytest.raises(ConfigurationError, match="collection"):
        required_permissions("admin")
    with pytest.raises(ConfigurationError, match="not a permission"):
        required_permissions({"a", ""})


# --- settings ---------------------------------------------------------------------------


def test_error_detail_and_failure_level_from_the_environment() -> None:
    config = Config.from_env({"MAUTH_ERROR_DETAIL": "false", "MAUTH_FAILURE_LOG_LEVEL": "info"})
    assert config.error_detail is False
    assert config.failure_level == logging.INFO
    default = Config.from_env({})
    assert default.error_detail is True
    assert default.failure_level == logging.WARNING
    assert Config(failure_log_level=logging.DEBUG).failure_level == logging.DEBUG


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MAUTH_ERROR_DETAIL": "maybe"}, "MAUTH_ERROR_DETAIL"),
        ({"MAUTH_FAILURE_LOG_LEVEL": "LOUD"}, "MAUTH_FAILURE_LOG_LEVEL"),
    ],
)
def test_bad_settings(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Config.from_env(env)


def test_config_repr_summarises_permissions() -> None:
    shown = repr(Config(permissions={A: ["admin"], B: ["x"]}))
    assert "2 apps" in shown
    assert "admin" not in shown
