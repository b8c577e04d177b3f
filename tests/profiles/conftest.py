"""Fixtures for the profile mapping tests: key material and the separate adapters venv."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.dbt_adapters import AdaptersVenvError, KeyPair, ensure_adapters_venv


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    """A fresh 2048-bit RSA key (Snowflake key pair auth, BigQuery service accounts)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    passphrase = "kp-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    return KeyPair(pem=pem, encrypted_pem=encrypted, passphrase=passphrase)


@pytest.fixture(scope="session")
def adapters_python() -> Path:
    """The Python of ``.venv-adapters/`` (see support/dbt_adapters.py)."""
    try:
        return ensure_adapters_venv()
    except AdaptersVenvError as exc:
        pytest.fail(str(exc))
