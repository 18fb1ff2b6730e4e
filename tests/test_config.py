"""Configuration: every environment name, contradictions, KMS (through moto), upstream names."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mauth_client.config import Config
from mauth_client.exceptions import ConfigurationError

from .conftest import VECTORS

PEM = (VECTORS / "signing-key.pem").read_text()


def test_defaults_from_empty_environment() -> None:
    config = Config.from_env({})
    assert config.app_uuid is None and config.private_key is None and config.mauth_url is None
    assert (config.mauth_api_version, config.mauth_mode, config.sign_versions) == (
        "v1",
        "local",
        "v1",
    )
    assert config.v2_only_authenticate is False
    assert config.disable_fallback_to_v1_on_v2_failure is False
    assert config.time_window == 300


def test_every_name_is_read() -> None:
    config = Config.from_env(
        {
            "APP_UUID": " app-1 ",
            "MAUTH_PRIVATE_KEY": PEM,
            "MAUTH_URL": "https://mauth.example.com",
            "MAUTH_API_VERSION": "v1",
            "MAUTH_MODE": "REMOTE",
            "MAUTH_SIGN_VERSIONS": "v1,v2",
            "V2_ONLY_AUTHENTICATE": "true",
            "MAUTH_DISABLE_FALLBACK_TO_V1_ON_V2_FAILURE": "yes",
        }
    )
    assert config.app_uuid == "app-1"
    assert config.private_key == PEM
    assert config.mauth_url == "https://mauth.example.com"
    assert config.mauth_mode == "remote"
    assert config.sign_versions == "v1,v2"
    assert config.v2_only_authenticate is True
    assert config.disable_fallback_to_v1_on_v2_failure is True


def test_alternative_names() -> None:
    config = Config.from_env(
        {"MAUTH_APP_UUID": "app-2", "PRIVATE_KEY": PEM, "MAUTH_V2_ONLY_AUTHENTICATE": "1"}
    )
    assert (config.app_uuid, config.private_key, config.v2_only_authenticate) == (
        "app-2",
        PEM,
        True,
    )


def test_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(PEM)
    assert Config.from_env({"MAUTH_PRIVATE_KEY_FILE": str(path)}).private_key == PEM


def test_unreadable_private_key_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"MAUTH_PRIVATE_KEY_FILE names .* could not be read"
    ):
        Config.from_env({"MAUTH_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")})


def test_value_and_file_contradict(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="both MAUTH_PRIVATE_KEY and MAUTH_PRIVATE_KEY_FILE"
    ):
        Config.from_env({"MAUTH_PRIVATE_KEY": PEM, "MAUTH_PRIVATE_KEY_FILE": str(tmp_path)})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAUTH_MODE": "sideways"}, "MAUTH_MODE must be 'local' or 'remote'"),
        ({"MAUTH_API_VERSION": "one"}, "MAUTH_API_VERSION"),
        ({"MAUTH_SIGN_VERSIONS": "v3"}, "MAUTH_SIGN_VERSIONS"),
        ({"V2_ONLY_AUTHENTICATE": "maybe"}, "V2_ONLY_AUTHENTICATE must be true or false"),
        ({"MAUTH_URL": "mauth.example.com"}, "MAUTH_URL must be an http"),
    ],
)
def test_malformed_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config.from_env(env)


def test_require_names_what_to_set() -> None:
    with pytest.raises(
        ConfigurationError, match=r"set APP_UUID \(or MAUTH_APP_UUID\) and MAUTH_PRIVATE_KEY"
    ):
        Config.from_env({}).require("app_uuid", "private_key")
    with pytest.raises(ConfigurationError, match="set MAUTH_URL"):
        Config.from_env({}).require("mauth_url")


def test_invalid_numbers_rejected() -> None:
    with pytest.raises(ConfigurationError, match="read_timeout"):
        Config(read_timeout=-1)


def test_upstream_names_on_instances_and_class(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(app_uuid="x", sign_versions="v2", mauth_mode="remote")
    assert (config.APP_UUID, config.SIGN_VERSIONS, config.MAUTH_MODE) == ("x", "v2", "remote")
    monkeypatch.setenv("APP_UUID", "read-at-access-time")
    monkeypatch.setenv("V2_ONLY_AUTHENTICATE", "true")
    assert Config.APP_UUID == "read-at-access-time"
    assert Config.V2_ONLY_AUTHENTICATE is True
    monkeypatch.setenv("APP_UUID", "changed")
    assert Config.APP_UUID == "changed"  # never frozen at import time


def test_class_attribute_can_be_assigned_as_upstream_tests_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Config, "V2_ONLY_AUTHENTICATE", True, raising=False)
    assert Config.V2_ONLY_AUTHENTICATE is True


def test_repr_hides_the_private_key_and_url_credentials() -> None:
    text = repr(Config(app_uuid="a", private_key=PEM, mauth_url="https://u:s3cret@mauth.example"))
    assert "PRIVATE" not in text and "s3cret" not in text
    assert "app_uuid='a'" in text and "mauth_url='https://***@mauth.example'" in text


# --- KMS --------------------------------------------------------------------------------


@pytest.fixture
def kms_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    from moto import mock_aws

    with mock_aws():
        yield


def test_kms_encrypted_key_is_decrypted(kms_env: None) -> None:
    import boto3

    kms = boto3.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=PEM.encode())["CiphertextBlob"]
    config = Config.from_env({"MAUTH_PRIVATE_KEY": base64.b64encode(blob).decode()})
    assert config.private_key == PEM


def test_kms_value_that_is_not_base64(kms_env: None) -> None:
    with pytest.raises(ConfigurationError, match="neither PEM nor base64"):
        Config.from_env({"MAUTH_PRIVATE_KEY": "not base64 !!"})


def test_kms_failure_is_a_clear_error(kms_env: None) -> None:
    with pytest.raises(ConfigurationError, match="decrypting the KMS-encrypted private key failed"):
        Config.from_env({"MAUTH_PRIVATE_KEY": base64.b64encode(b"garbage ciphertext").decode()})


def test_kms_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_boto3(name: str, *args: object, **kwargs: object) -> object:
        if name == "boto3":
            raise ImportError("No module named 'boto3'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(ConfigurationError, match=r"pip install 'mauth-client\[aws\]'"):
        Config.from_env({"MAUTH_PRIVATE_KEY": "QUJD"})


def test_environment_is_not_read_at_import() -> None:
    # The module holds no configuration values of its own.
    import mauth_client.config as module

    assert not any(name in vars(module) for name in ("APP_UUID", "MAUTH_URL", "PRIVATE_KEY"))


def test_credentials_in_mauth_url_never_reach_a_message() -> None:
    from mauth_client.config import redact_url
    from mauth_client.exceptions import UnableToAuthenticateError
    from mauth_client.key_source import LocalKeySource

    assert (
        redact_url("https://user:s3cret@mauth.example.com/x") == "https://***@mauth.example.com/x"
    )
    assert redact_url("https://mauth.example.com/a@b") == "https://mauth.example.com/a@b"
    with pytest.raises(ConfigurationError) as bad:
        Config(mauth_url="ftp://user:s3cret@host")
    assert "s3cret" not in str(bad.value)
    config = Config(
        app_uuid="a",
        private_key=PEM,
        mauth_url="http://user:s3cret@127.0.0.1:9",
        retry_backoff=0.01,
    )
    with pytest.raises(UnableToAuthenticateError) as down:
        LocalKeySource(config).get_public_key("x")
    assert "s3cret" not in str(down.value) and "***@127.0.0.1:9" in str(down.value)
