"""Fixtures for the object-storage tests: moto's S3 server on loopback, an Airflow ``aws``
connection to it, a bucket per test, an empty cache root per test, and a dbt project on S3."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from support.s3_server import Bucket, S3Server, s3_server_fixture

s3_server = pytest.fixture(scope="session")(s3_server_fixture)


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket, and the ``aws`` connection (endpoint_url: the loopback server) in the env."""
    bucket = s3_server.new_bucket()
    monkeypatch.setenv(*bucket.connection_env())
    return bucket


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache root of this test's own (a cold worker's)."""
    root = tmp_path / "cache-root"
    monkeypatch.setenv("AIRFLOW_DBT_PROVIDER_CACHE_DIR", str(root))
    monkeypatch.delenv("AIRFLOW__DBT_PROVIDER__PARSE_CACHE_URL", raising=False)
    return root


@pytest.fixture
def task_log(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> TaskLog:
    """What operators log (Airflow's handlers write to the process's stdout), read with ``.text()``."""
    for handler in logging.getLogger().handlers:  # Airflow's, not pytest's own capture handlers
        if isinstance(handler, logging.StreamHandler) and not type(handler).__module__.startswith("_pytest"):
            monkeypatch.setattr(handler, "stream", sys.stdout)
    capfd.readouterr()
    return TaskLog(capfd)


class TaskLog:
    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self._capfd = capfd
        self._seen = ""

    def text(self) -> str:
        """Everything logged since the fixture started."""
        out, err = self._capfd.readouterr()
        self._seen += out + err
        return self._seen
