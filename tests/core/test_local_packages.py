"""``install_deps`` on a dbt package's own test project: ``local:`` paths that climb out of it.

A dbt package is tested by an ``integration_tests/`` project inside it whose ``packages.yml``
says ``local: ../`` (dbt-labs/dbt-project-evaluator, dbt_utils, ...). The runner installs packages
into a mirror of the project, so these paths must resolve as they do next to the real project.
Real dbt deps and real dbt run on DuckDB; the project stays read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from support.dbt_projects import (
    PACKAGE_TEST_MODELS,
    make_runner,
    package_with_integration_tests,
    set_read_only,
    tree_state,
    write_files,
)

from airflow_dbt_provider.core import DbtConfigurationError


@pytest.fixture(scope="module")
def package_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A package with its integration-tests project (read-only); see ``package_with_integration_tests``."""
    root = package_with_integration_tests(tmp_path_factory.mktemp("package"))
    set_read_only(root)
    before = tree_state(root)
    yield root
    after = tree_state(root)
    set_read_only(root, read_only=False)
    assert after == before, "dbt wrote into the package or its test project"


def test_local_parent_package_installs_and_runs(package_root: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "integration.duckdb"
    runner = make_runner(package_root / "integration_tests", warehouse, tmp_path / "cache")
    result = runner.invoke(["run"])
    assert result.success, result.error_messages
    assert {node.unique_id for node in result.nodes} == PACKAGE_TEST_MODELS
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select n, answer from main.doubled").fetchone() == (42, 42)


def test_a_local_path_that_leads_nowhere_names_the_entry_and_the_real_path(tmp_path: Path) -> None:
    project = tmp_path / "checkout" / "integration_tests"
    write_files(
        project,
        {
            "dbt_project.yml": "name: t\nversion: '1.0.0'\nconfig-version: 2\nprofile: t\n",
            "packages.yml": "packages:\n  - local: ../../my_pakage\n",
        },
    )
    runner = make_runner(project, tmp_path / "x.duckdb", tmp_path / "cache")
    with pytest.raises(DbtConfigurationError) as caught:
        runner.invoke(["run"])
    message = str(caught.value)
    assert f"packages.yml entry `local: ../../my_pakage` resolves to {tmp_path / 'my_pakage'}" in message
    assert "which does not exist" in message
    assert f"against the project directory {project}" in message
    assert ".staging-" not in message
