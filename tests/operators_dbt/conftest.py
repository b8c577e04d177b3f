"""Fixtures for the dbt Core operator tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file of the module's own."""
    return tmp_path_factory.mktemp("warehouse") / "jaffle_shop.duckdb"
