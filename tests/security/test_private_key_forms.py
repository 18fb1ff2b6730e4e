"""Issue 10 item 13: a private key given as bare base64 DER (a PEM without its
markers) is loaded as a key, never sent to KMS; real KMS ciphertext still decrypts.
KMS is moto's (the only mock the project allows)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from mauth_client.config import Config

from ..conftest import new_key_pair


@pytest.fixture
def kms_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3
    from moto import mock_aws

    calls: list[str] = []
    with mock_aws():
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None

        def record(event_name: str, **_: Any) -> None:
            calls.append(event_name)

        boto3.DEFAULT_SESSION.events.register("before-call.kms", record)
        yield calls
    boto3.DEFAULT_SESSION = None


def _bare(pem: str, fmt: serialization.PrivateFormat) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
    return base64.b64encode(der).decode()


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
@pytest.mark.parametrize("layout", ["one line", "wrapped at 64"])
def test_bare_der_is_a_key_not_a_kms_ciphertext(
    kms_calls: list[str], fmt: serialization.PrivateFormat, layout: str
) -> None:
    private, public = new_key_pair()
    bare = _bare(private, fmt)
    if layout != "one line":
        bare = "\n".join(bare[i : i + 64] for i in range(0, len(bare), 64))
    config = Config.from_env({"MAUTH_PRIVATE_KEY": bare})
    assert config.private_key is not None
    loaded = serialization.load_pem_private_key(str(config.private_key).encode(), None)
    assert (
        loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public.encode()
    )
    assert kms_calls == []


def test_real_kms_ciphertext_still_decrypts(kms_calls: list[str]) -> None:
    import boto3

    private, _ = new_key_pair()
    kms = boto3.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=private.encode())["CiphertextBlob"]
    kms_calls.clear()
    config = Config.from_env({"MAUTH_PRIVATE_KEY": base64.b64encode(blob).decode()})
    assert config.private_key == private
    assert kms_calls == ["before-call.kms.Decrypt"]


@pytest.mark.parametrize("route", ["resolved() on first use", "Config.PRIVATE_KEY on the class"])
def test_bare_der_is_never_sent_to_kms_on_the_adapters_paths(
    kms_calls: list[str], route: str
) -> None:
    """Adapters build their config unresolved and call resolved() when the key is first
    needed; upstream suites assign the key on the class. Both took the KMS branch."""
    private, _ = new_key_pair()
    bare = _bare(private, serialization.PrivateFormat.TraditionalOpenSSL)
    if route.startswith("resolved"):
        config = Config.from_env({"MAUTH_PRIVATE_KEY": bare}, resolve_private_key=False)
        key = config.resolved().private_key
    else:
        Config.PRIVATE_KEY = bare
        try:
            key = Config.from_env({}).private_key
        finally:
            del Config.PRIVATE_KEY
    assert isinstance(key, str) and key.startswith("-----BEGIN")
    assert kms_calls == []
