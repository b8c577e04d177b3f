"""Fixtures for the dbt Core runner tests: read-only project copies, a private parse cache."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dbt_projects import copy_project, set_read_only, tree_state


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One parse cache for the session, so tests after the first parse partially."""
    return tmp_path_factory.mktemp("dbt-cache")


@pytest.fixture(scope="module")
def readonly_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A read-only copy of the example project; the test fails if dbt wrote anything into it."""
    root = tmp_path_factory.mktemp("ro-project")
    project = copy_project(root)
    set_read_only(root)
    before = tree_state(root)
    yield project
    after = tree_state(root)
    set_read_only(root, read_only=False)
    assert after == before, "dbt wrote into the project directory"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file of the module's own."""
    return tmp_path_factory.mktemp("warehouse") / "jaffle_shop.duckdb"


@pytest.fixture
def dbt_logger() -> logging.Logger:
    """The logger the tests' runners write dbt's lines to."""
    return logging.getLogger("tests.dbt")
