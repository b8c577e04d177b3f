"""Both dbt runners keep one contract (``core/project_run.py``): options, checks, repr.

These checks happen before dbt starts, so they need neither dbt nor a warehouse: the subprocess
runner's executable is a script that would fail the test if it ever ran.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_dbt_provider.core import DbtConfigurationError, DbtRunner
from airflow_dbt_provider.core.project_run import ProjectRunner
from airflow_dbt_provider.core.subprocess_runner import SubprocessDbtRunner


@pytest.fixture
def runners(tmp_path: Path) -> list[ProjectRunner]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: p\nversion: '1'\nprofile: p\n")
    (project / "profiles.yml").write_text("p: {target: dev, outputs: {dev: {type: duckdb}}}\n")
    dbt = tmp_path / "dbt"
    dbt.write_text("#!/bin/sh\necho 'dbt must not start' >&2\nexit 3\n")
    dbt.chmod(0o755)
    options = {
        "target": "dev",
        "vars": {"x": 1},
        "env": {"WAREHOUSE_PASSWORD": "s3cr3t-value"},
        "logger": logging.getLogger("tests.contract"),
        "cache_dir": tmp_path / "cache",
    }
    return [DbtRunner(project, **options), SubprocessDbtRunner(dbt, project, **options)]  # type: ignore[arg-type]


def test_both_runners_take_the_same_options(runners: list[ProjectRunner], tmp_path: Path) -> None:
    for runner in runners:
        assert isinstance(runner, ProjectRunner)
        assert runner.project_dir == (tmp_path / "project").resolve()
        assert runner.profiles_dir == runner.project_dir  # the project holds profiles.yml
        assert (runner.target, runner.vars, runner.cache_root) == ("dev", {"x": 1}, tmp_path / "cache")
        assert runner.events.clean("password is s3cr3t-value") == "password is ***"
        shown = repr(runner)
        assert "s3cr3t-value" not in shown
        assert "env_keys=['WAREHOUSE_PASSWORD']" in shown
        assert shown.startswith(type(runner).__name__ + "(")


@pytest.mark.parametrize("option", ["project_dir", "target_path", "log_path"])
def test_both_runners_refuse_overriding_what_they_manage(runners: list[ProjectRunner], option: str) -> None:
    for runner in runners:
        with pytest.raises(DbtConfigurationError, match=f"{option}= cannot be overridden per invocation"):
            runner.invoke(["run"], **{option: "/elsewhere"})


def test_both_runners_refuse_the_options_they_own_in_args(runners: list[ProjectRunner]) -> None:
    for runner in runners:
        with pytest.raises(DbtConfigurationError, match="--vars is managed by the runner; pass vars"):
            runner.invoke(["run", "--vars", "{x: 2}"])
        with pytest.raises(DbtConfigurationError, match="No dbt command in"):
            runner.invoke(["--debug"])


def test_the_subprocess_runner_also_owns_profiles_dir(runners: list[ProjectRunner]) -> None:
    with pytest.raises(DbtConfigurationError, match="profiles_dir= cannot be overridden"):
        runners[1].invoke(["run"], profiles_dir="/elsewhere")
