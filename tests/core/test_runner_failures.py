"""How the runner reports what went wrong: failed tests, broken models, bad projects, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dbt_projects import copy_project, make_runner

from airflow_dbt_provider.core import (
    DbtCommandFailedError,
    DbtConfigurationError,
    DbtInvocationError,
    DbtRunner,
)

FAILING_TEST = "test.jaffle_shop.customers_have_no_rows"
BROKEN_MODEL = "model.jaffle_shop.broken_model"


@pytest.fixture(scope="module")
def faulty_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project plus a failing singular test, a model whose SQL fails in DuckDB, and
    models that a var and an env var enable at parse time."""
    project = copy_project(tmp_path_factory.mktemp("faulty"))
    (project / "tests" / "customers_have_no_rows.sql").write_text(
        "-- fails on purpose: every seeded customer is a failing row\n"
        "select id from {{ ref('raw_customers') }}\n"
    )
    (project / "models" / "broken_model.sql").write_text("select * from table_that_does_not_exist\n")
    (project / "models" / "extra_by_var.sql").write_text(
        "{{ config(enabled=var('enable_extra', false)) }}\nselect 1 as id\n"
    )
    (project / "models" / "extra_by_env.sql").write_text(
        "{{ config(enabled=env_var('ADP_TEST_ENABLE_EXTRA', 'no') == 'yes') }}\nselect 1 as id\n"
    )
    return project


@pytest.fixture(scope="module")
def faulty_runner(
    faulty_project: Path, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> DbtRunner:
    runner = make_runner(faulty_project, tmp_path_factory.mktemp("wh") / "faulty.duckdb", cache_dir)
    assert runner.invoke(["seed"]).success
    return runner


def test_failing_test_and_broken_model_are_named(faulty_runner: DbtRunner) -> None:
    result = faulty_runner.invoke(["build"], select=["broken_model", "customers_have_no_rows", "stg_orders"])
    assert not result.success
    failed = {node.unique_id: node for node in result.failed_nodes}
    assert set(failed) == {BROKEN_MODEL, FAILING_TEST}
    assert failed[FAILING_TEST].status == "fail"
    assert failed[FAILING_TEST].failures == 10
    assert failed[BROKEN_MODEL].status == "error"
    assert "table_that_does_not_exist" in (failed[BROKEN_MODEL].message or "")
    assert result.counts["success"] == 1  # stg_orders still built
    error = DbtCommandFailedError(result)
    message = str(error)
    assert message.startswith("dbt build failed: 2 node(s) failed or errored")
    assert f"{BROKEN_MODEL} [error]: " in message
    assert "table_that_does_not_exist" in message
    assert f"{FAILING_TEST} [fail]: Got 10 results" in message
    summary = result.summary()
    assert {n["unique_id"] for n in summary["failed_nodes"]} == {BROKEN_MODEL, FAILING_TEST}


def test_fail_fast_override_stops_after_the_first_failure(faulty_runner: DbtRunner) -> None:
    result = faulty_runner.invoke(
        ["build"], select=["broken_model", "stg_orders+"], fail_fast=True, threads=1
    )
    assert not result.success
    assert [n.unique_id for n in result.failed_nodes] == [BROKEN_MODEL]
    assert result.counts["error"] == 1
    assert result.counts["skipped"] >= 10  # everything after the failure was skipped, not run


def test_a_changed_parse_time_var_reparses(faulty_runner: DbtRunner) -> None:
    def models(**overrides: object) -> list[str]:
        result = faulty_runner.invoke(["ls"], resource_types=["model"], output="name", **overrides)
        assert result.success
        return sorted(result.output)

    assert "extra_by_var" not in models()
    assert "extra_by_var" in models(vars={"enable_extra": True})
    assert "extra_by_var" not in models()


def test_a_changed_parse_time_env_var_reparses(
    faulty_runner: DbtRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def models() -> list[str]:
        result = faulty_runner.invoke(["ls"], resource_types=["model"], output="name")
        assert result.success
        return sorted(result.output)

    monkeypatch.delenv("ADP_TEST_ENABLE_EXTRA", raising=False)
    assert "extra_by_env" not in models()
    monkeypatch.setenv("ADP_TEST_ENABLE_EXTRA", "yes")
    assert "extra_by_env" in models()


def test_a_jinja_error_raises_chained_to_dbts_exception(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_project(tmp_path)
    (project / "models" / "bad_jinja.sql").write_text("select {{ ref( }}\n")
    runner = make_runner(project, tmp_path / "x.duckdb", cache_dir)
    with pytest.raises(DbtInvocationError, match=r"^dbt run raised an error: .*bad_jinja") as caught:
        runner.invoke(["run"])
    assert caught.value.__cause__ is caught.value.exception
    assert type(caught.value.__cause__).__module__.startswith("dbt")


def test_nonexistent_project_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DbtConfigurationError, match="does not exist; set project_dir"):
        DbtRunner(tmp_path / "nowhere")
    with pytest.raises(DbtConfigurationError, match=r"has no dbt_project\.yml"):
        DbtRunner(tmp_path)


def test_options_the_runner_owns_are_rejected(faulty_project: Path) -> None:
    runner = DbtRunner(faulty_project)
    with pytest.raises(DbtConfigurationError, match="--target-path is managed by the runner"):
        runner.invoke(["run", "--target-path", "/tmp/x"])
    with pytest.raises(DbtConfigurationError, match="pass vars instead"):
        runner.invoke("run --vars '{a: 1}'")
    with pytest.raises(DbtConfigurationError, match="No dbt command"):
        runner.invoke([])
    with pytest.raises(DbtConfigurationError, match=r"profiles_dir .* has no profiles\.yml"):
        DbtRunner(faulty_project, profiles_dir=faulty_project / "models")
