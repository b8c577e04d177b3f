"""The subprocess mode: dbt from a second virtualenv, same results and log lines as in process."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support.dbt_projects import (
    BUILD_NODES,
    copy_project,
    package_with_integration_tests,
    recording,
)

from airflow_dbt_provider.core import DbtConfigurationError, DbtInvocationError, DbtResult
from airflow_dbt_provider.core.subprocess_runner import (
    SubprocessDbtRunner,
    cli_option,
    node_results,
    parse_json_event,
)


def _runner(
    dbt_executable: Path, project: Path, warehouse: Path, cache_dir: Path, **kwargs: object
) -> SubprocessDbtRunner:
    return SubprocessDbtRunner(
        dbt_executable,
        project,
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
        install_deps=True,
        cache_dir=cache_dir,
        logger=logging.getLogger("tests.dbt.production"),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_second_venv_is_not_airflows(dbt_executable: Path) -> None:
    """The point of the mode: dbt runs with another interpreter, where Airflow is not installed."""
    import subprocess

    python = dbt_executable.parent / "python"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, importlib.util as u; print(sys.prefix); print(u.find_spec('airflow'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix, airflow_spec = probe.stdout.split()
    assert Path(prefix).resolve() != Path(sys.prefix).resolve()  # another virtualenv ...
    assert dbt_executable.resolve().is_relative_to(Path(prefix).resolve())  # ... holding the dbt we run
    assert airflow_spec == "None"  # ... where Airflow cannot be imported


@dataclass
class Built:
    """The example project built once by the subprocess runner, shared by the module's tests."""

    project: Path
    runner: SubprocessDbtRunner
    result: DbtResult
    artifacts: Path
    lines: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, dbt_executable: Path, cache_dir: Path) -> Built:
    root = tmp_path_factory.mktemp("subprocess-build")
    project = copy_project(root / "project")
    artifacts = root / "artifacts"
    runner = _runner(
        dbt_executable,
        project,
        root / "w.duckdb",
        cache_dir,
        artifacts_dir=artifacts,
        secrets=["stg_payments"],  # any value a log line carries: proves redaction applies here too
    )
    with recording(logging.getLogger("tests.dbt.production")) as log:
        result = runner.invoke(["build"], capture=["run_results.json"])
    return Built(project, runner, result, artifacts, log.lines)


def test_build_maps_results_from_run_results(built: Built) -> None:
    result = built.result
    assert result.success, result.error_messages
    assert len(result.nodes) == BUILD_NODES
    assert result.counts == {"pass": 13, "success": 9}
    customers = next(n for n in result.nodes if n.unique_id == "model.jaffle_shop.customers")
    assert customers.started_at is not None
    assert customers.completed_at is not None
    assert customers.started_at <= customers.completed_at
    assert customers.relation_name is not None
    assert "customers" in customers.relation_name
    assert (built.artifacts / "run_results.json").is_file()
    assert (built.artifacts / "dbt.log").is_file()
    assert b'"results"' in result.captured["run_results.json"]


def test_json_log_lines_are_parsed_and_redacted(built: Built) -> None:
    """dbt's JSON lines are parsed: messages, not raw JSON, reach the logger; secrets are redacted."""
    assert any(line.startswith("Finished running") for line in built.lines)
    assert not any(line.lstrip().startswith("{") for line in built.lines)
    assert not any("stg_payments" in line for line in built.lines)
    assert any("***" in line for line in built.lines)


def test_failed_node_and_skipped_children_from_run_results(built: Built) -> None:
    (built.project / "models" / "staging" / "stg_orders.sql").write_text("select * from missing_table\n")
    result = built.runner.invoke(["run"], select=["stg_orders+"])
    assert not result.success
    assert [n.unique_id for n in result.failed_nodes] == ["model.jaffle_shop.stg_orders"]
    assert "missing_table" in (result.failed_nodes[0].message or "")
    statuses = {n.unique_id: n.status for n in result.nodes}
    assert statuses == {
        "model.jaffle_shop.stg_orders": "error",
        "model.jaffle_shop.orders": "skipped",
        "model.jaffle_shop.customers": "skipped",
    }


def test_a_package_test_project_and_an_empty_selection(
    tmp_path: Path, dbt_executable: Path, cache_dir: Path
) -> None:
    """As in process: ``local: ../`` installs (issue 14), and an empty selection is flagged, warned once.

    One invocation proves both: ``dbt deps`` in the mirror fails unless ``local: ../`` leads to
    the package, and parsing the test project needs the package's macro.
    """
    package = package_with_integration_tests(tmp_path)
    runner = _runner(dbt_executable, package / "integration_tests", tmp_path / "package.duckdb", cache_dir)
    with recording(logging.getLogger("tests.dbt.production")) as log:
        empty = runner.invoke(["build"], select=["no_such_model"])
    assert empty.success, empty.error_messages
    assert any("Installed from <local @ ../>" in line for line in log.lines), log.lines
    assert empty.empty_selection
    assert empty.nodes == ()
    assert [line for line in log.lines if "selection matched no nodes" in line] == [
        "dbt build: the selection matched no nodes; nothing ran"
    ]


def test_unhandled_dbt_error_raises_with_dbts_message(
    tmp_path: Path, dbt_executable: Path, cache_dir: Path
) -> None:
    """dbt's exit code 2 (it could not run the command) is the in-process exception case."""
    project = copy_project(tmp_path / "project")
    runner = SubprocessDbtRunner(dbt_executable, project, target="no_such_target")
    with pytest.raises(DbtInvocationError, match=r"(?s)dbt run raised an error: .*no_such_target"):
        runner.invoke(["run"])


def test_terminate_kills_the_whole_process_group(
    tmp_path: Path, dbt_executable: Path, cache_dir: Path
) -> None:
    """A Python model starts a child that would outlive dbt; terminate() stops both."""
    project = copy_project(tmp_path / "project")
    pid_file = tmp_path / "child.pid"
    (project / "models" / "staging" / "hang.py").write_text(
        "import subprocess, time\n\n\n"
        "def model(dbt, session):\n"
        "    child = subprocess.Popen(['sleep', '600'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "    time.sleep(600)\n"
        "    return session.sql('select 1 as x')\n"
    )
    runner = _runner(dbt_executable, project, tmp_path / "w.duckdb", cache_dir)
    outcome: dict[str, BaseException] = {}

    def invoke() -> None:
        try:
            runner.invoke(["run"], select=["hang"])
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=invoke)
    thread.start()
    deadline = time.monotonic() + 180
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the hanging model never started"
        assert thread.is_alive(), outcome
        time.sleep(0.2)
    child = int(pid_file.read_text())
    assert runner.terminate(grace=5)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), DbtInvocationError)
    assert "terminated" in str(outcome["error"])
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "dbt's child process survived terminate()"
        time.sleep(0.2)
    assert not runner.terminate()  # nothing left to stop


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().split()[2] != "Z"


def test_bad_executable_is_a_clear_configuration_error(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    with pytest.raises(DbtConfigurationError, match="is not an executable file; point it at the dbt script"):
        SubprocessDbtRunner(tmp_path / "no-such-dbt", project)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("select", ["a", "b+"], ["--select", "a", "b+"]),
        ("full_refresh", True, ["--full-refresh"]),
        ("fail_fast", False, ["--no-fail-fast"]),
        ("threads", 4, ["--threads", "4"]),
        ("vars", {"day": "2024-01-01"}, ["--vars", '{"day": "2024-01-01"}']),
        ("resource_types", ["model", "seed"], ["--resource-type", "model", "--resource-type", "seed"]),
        ("selector", None, []),
    ],
)
def test_cli_option(name: str, value: object, expected: list[str]) -> None:
    assert cli_option(name, value) == expected


def test_json_lines_and_run_results_parsing() -> None:
    event = parse_json_event('{"info": {"name": "LogModelResult", "level": "error", "msg": "boom"}}')
    assert (event.info.name, event.info.level, event.info.msg) == ("LogModelResult", "error", "boom")
    assert parse_json_event("Traceback (most recent call last):") is None
    assert parse_json_event('{"not": "an event"}') is None
    nodes = node_results(
        {
            "results": [
                {
                    "unique_id": "model.p.m",
                    "status": "error",
                    "message": "bad",
                    "execution_time": 1.5,
                    "adapter_response": {"rows_affected": -1},
                    "timing": [
                        {
                            "name": "execute",
                            "started_at": "2024-01-01T00:00:00.000001Z",
                            "completed_at": "2024-01-01T00:00:01.5Z",  # not 3 or 6 digits
                        }
                    ],
                },
                {
                    "unique_id": "model.p.n",
                    "status": "success",
                    "timing": [{"name": "execute", "started_at": "?"}],
                },
            ]
        }
    )
    assert nodes[0].failed
    assert nodes[0].rows_affected is None
    assert nodes[0].started_at == datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc)
    assert nodes[0].completed_at == datetime(2024, 1, 1, 0, 0, 1, 500000, tzinfo=timezone.utc)
    assert (nodes[1].status, nodes[1].started_at, nodes[1].completed_at) == ("success", None, None)
