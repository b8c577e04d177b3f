"""Fixtures for the production features of local dbt: subprocess mode, cancel, retry."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.dbt_subprocess_venv import ensure_dbt_venv


@pytest.fixture(scope="session")
def dbt_executable() -> Path:
    """``dbt`` from a second virtualenv (built on first use, then cached in ``.venv-dbt-subprocess``)."""
    return ensure_dbt_venv()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One package-mirror / parse cache for the session."""
    return tmp_path_factory.mktemp("dbt-cache")


@pytest.fixture
def dbt_logger() -> logging.Logger:
    """The logger the tests' runners write dbt's lines to."""
    return logging.getLogger("tests.dbt.production")
