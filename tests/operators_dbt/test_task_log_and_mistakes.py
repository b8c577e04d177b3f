"""What a user reads in a real task run (``dag.test()``): the task log, and the errors of common mistakes.

One DAG run (real Airflow task runner, real dbt on DuckDB) covers: a project that triggers a dbt
deprecation (each dbt line once in the task log), a ``profile_conn_id`` that names no connection,
and a selection that matches nothing (a warning by default, an error when asked for).

The task log is read where Airflow writes it, the process's output. Airflow points the root
logger's stream handler at ``sys.stdout`` when it is imported, which under pytest is an earlier
capture; the test points it at this test's capture for the run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from support.cloud_dags import make_dag, run_dag
from support.dbt_projects import copy_project

from airflow_dbt_provider.core.dbt_versions import installed_minor
from airflow_dbt_provider.operators.dbt import (
    DbtBuildOperator,
    DbtDocsGenerateOperator,
    DbtLsOperator,
    DbtRunOperator,
)

#: A model whose generic test passes its argument at the top level: dbt >= 1.10 deprecates that.
DEPRECATED_TEST_YML = """
models:
  - name: deprecated_style
    columns:
      - name: id
        data_tests:
          - accepted_values:
              values: [1]
"""
EMPTY_WARNING = "the selection matched no nodes; nothing ran"
DBT_MINOR = installed_minor() or (0, 0)


def _task_lines(log: str, task_id: str) -> list[str]:
    """The log lines between ``dag.test()``'s start and end markers of one task."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if f"starting task_id={task_id} " in line)
    end = next(i for i, line in enumerate(lines) if f"end task task_id={task_id} " in line)
    return lines[start:end]


@pytest.mark.usefixtures("airflow_db")
def test_task_log_and_errors_of_common_mistakes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_project(tmp_path / "project")
    (project / "models" / "deprecated_style.sql").write_text("select 1 as id\n")
    (project / "models" / "deprecated_style.yml").write_text(DEPRECATED_TEST_YML)
    common = {"project_dir": str(project), "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")}}
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_NOT_DEFINED", raising=False)
    with make_dag("dbt_task_log_and_mistakes") as dag:
        # Its own parse: after another task's, dbt would parse partially and not meet the deprecation.
        DbtRunOperator(task_id="deprecated", select="deprecated_style", parse_cache=False, **common)
        DbtRunOperator(task_id="empty", select="no_such_model", **common)
        DbtBuildOperator(
            task_id="empty_strict", select="no_such_model", fail_on_empty_selection=True, **common
        )
        DbtRunOperator(task_id="no_connection", profile_conn_id="warehouse_not_defined", **common)
    for handler in logging.getLogger().handlers:  # Airflow's, not pytest's own capture handlers
        if isinstance(handler, logging.StreamHandler) and not type(handler).__module__.startswith("_pytest"):
            monkeypatch.setattr(handler, "stream", sys.stdout)
    capfd.readouterr()
    result = run_dag(dag)
    log = "".join(capfd.readouterr())

    # dbt's deprecation warning, its 7-line summary and its banner, each once (the parse and the
    # run that reuses the parse's manifest used to repeat the summary and the banner).
    deprecated = _task_lines(log, "deprecated")
    assert result.state("deprecated") == "success", result.errors("deprecated")
    assert any("OK created sql view model main.deprecated_style" in line for line in deprecated), log[-3000:]
    once = ["Running with dbt=", "Registered adapter: duckdb="]
    if DBT_MINOR >= (1, 10):  # the deprecation and its summary exist from dbt-core 1.10 on
        once += [
            "[WARNING][MissingArgumentsPropertyInGenericTestDeprecation]: Deprecated",
            "Summary of encountered deprecations:",
            # The example project's own tests use the same style, so the count is not 1.
            "- MissingArgumentsPropertyInGenericTestDeprecation: ",
            "run command again with the `--show-all-deprecations` flag.",
        ]
    for text in once:
        assert sum(text in line for line in deprecated) == 1, (text, deprecated)

    # An empty selection succeeds as in dbt, with one warning line saying nothing ran...
    empty = _task_lines(log, "empty")
    assert result.state("empty") == "success", result.errors("empty")
    assert result.xcom("empty", "return_value")["counts"] == {}
    assert [line for line in empty if EMPTY_WARNING in line] == [
        next(line for line in empty if "dbt run: " + EMPTY_WARNING in line)
    ]
    assert "warning" in next(line for line in empty if EMPTY_WARNING in line)
    # ... and fails, naming the selection and the option, with fail_on_empty_selection=True.
    assert result.state("empty_strict") == "failed"
    (error,) = result.errors("empty_strict")
    assert "dbt build: the selection (select='no_such_model') matched no nodes, so nothing ran" in error
    assert "fail_on_empty_selection=True makes that a failure" in error

    # A profile_conn_id naming no connection says so, and how to define one.
    assert result.state("no_connection") == "failed"
    (error,) = result.errors("no_connection")
    assert "profile_conn_id='warehouse_not_defined': Airflow has no connection" in error
    assert "AIRFLOW_CONN_WAREHOUSE_NOT_DEFINED=" in error
    assert "airflow connections add warehouse_not_defined" in error
    assert "Admin > Connections" in error


def test_fail_on_empty_selection_is_checked_at_parse_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fail_on_empty_selection=True needs a command that runs selected"):
        DbtLsOperator(task_id="ls", project_dir=str(tmp_path), fail_on_empty_selection=True)
    DbtDocsGenerateOperator(task_id="docs", project_dir=str(tmp_path), fail_on_empty_selection=True)
