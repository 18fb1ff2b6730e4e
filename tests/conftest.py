"""Shared fixtures: the protocol's test vectors and throwaway keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mauth_client.testing import AppIdentity, LocalMAuthService

REPO = Path(__file__).resolve().parents[1]


#: The protocol's test vectors, kept under version control with the tests (a copy of the
#: project's shared vectors, README included), so a fresh clone needs nothing beside it.
VECTORS = Path(__file__).resolve().parent / "vectors"


def load_vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


@pytest.fixture(scope="session")
def vector_private_pem() -> str:
    return (VECTORS / "signing-key.pem").read_text()


@pytest.fixture(scope="session")
def vector_public_pem() -> str:
    return (VECTORS / "signing-key.pub.pem").read_text()


def new_key_pair(bits: int = 2048) -> tuple[str, str]:
    """A fresh (private PKCS #1 PEM, public SPKI PEM) pair, generated with cryptography."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    return new_key_pair()


@pytest.fixture
def service() -> Iterator[LocalMAuthService]:
    """A running local MAuth service on 127.0.0.1."""
    with LocalMAuthService() as running:
        yield running


@pytest.fixture
def me(service: LocalMAuthService) -> AppIdentity:
    """The app under test, registered with ``service``."""
    return service.new_app()


@pytest.fixture
def caller(service: LocalMAuthService) -> AppIdentity:
    """Another registered app, to sign requests to the app under test."""
    return service.new_app()
