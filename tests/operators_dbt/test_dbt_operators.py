"""The dbt Core operators in real DAG runs (``dag.test()``): real dbt on DuckDB, real XComs."""

from __future__ import annotations

import importlib.util
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG
from support.dbt_projects import BUILD_NODES, copy_project, recording

from airflow_dbt_provider.core import DbtCommandFailedError, DbtConfigurationError
from airflow_dbt_provider.operators.dbt import (
    DbtBuildOperator,
    DbtCloneOperator,
    DbtCompileOperator,
    DbtDebugOperator,
    DbtDepsOperator,
    DbtDocsGenerateOperator,
    DbtLsOperator,
    DbtOperator,
    DbtParseOperator,
    DbtRetryOperator,
    DbtRunOperationOperator,
    DbtRunOperator,
    DbtSeedOperator,
    DbtShowOperator,
    DbtSnapshotOperator,
    DbtSourceFreshnessOperator,
    DbtTestOperator,
    decode_artifact,
    encode_artifact,
)

REPO = Path(__file__).resolve().parents[2]


def _task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    return dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


@pytest.mark.usefixtures("airflow_db")
def test_example_dag_runs_seed_build_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAFFLE_SHOP_DUCKDB_PATH", str(tmp_path / "example.duckdb"))
    spec = importlib.util.spec_from_file_location(
        "dbt_local_duckdb", REPO / "example_dags" / "dbt_local_duckdb.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_run = module.dag.test()
    assert _task_states(dag_run) == {"seed": "success", "build": "success", "docs": "success"}
    summary = _xcom(dag_run, "build")
    assert summary["success"] is True
    assert summary["nodes"] == BUILD_NODES - 3  # seeds excluded
    run_results = decode_artifact(_xcom(dag_run, "build", "run_results"))
    assert len(run_results["results"]) == BUILD_NODES - 3
    assert run_results["args"]["exclude"] == ["resource_type:seed"]
    with duckdb.connect(str(tmp_path / "example.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.customers").fetchone() == (10,)
    artifacts = Path(module.AIRFLOW_HOME) / "dbt-artifacts" / "jaffle_shop" / dag_run.run_id
    assert (artifacts / "docs" / "catalog.json").is_file()
    assert (artifacts / "build" / "run_results.json").is_file()
    assert {
        "dbt://duckdb/example/main/customers",
        "dbt://duckdb/example/main/orders",
        "dbt://duckdb/example/main/customers_snapshot",
    } <= _asset_event_uris(module.dag.dag_id, dag_run.run_id)


def _asset_event_uris(dag_id: str, run_id: str) -> set[str]:
    """URIs of the Asset events a DAG run emitted, from the metadata DB dag.test() wrote."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        )
        return set(session.scalars(query))


class RecordingTaskInstance:
    """Stands in for the task instance in ``execute(context)`` calls: keeps what was pushed."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))  # XCom values must be JSON-serialisable


def _execute(operator: DbtOperator) -> tuple[Any, RecordingTaskInstance]:
    ti = RecordingTaskInstance()
    with DAG(dag_id=f"dag_{operator.task_id}", schedule=None, start_date=datetime(2026, 1, 1)):
        pass
    return operator.execute(context={"ti": ti}), ti  # type: ignore[arg-type]


def test_every_command_operator(tmp_path: Path, warehouse: Path) -> None:
    """One operator per dbt command, executed in order on one project (as tasks of one DAG)."""
    project = copy_project(tmp_path / "project")
    state = str(tmp_path / "state")
    common: dict[str, Any] = {"project_dir": str(project), "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)}}
    returned: dict[str, Any] = {}
    pushed: dict[str, dict[str, Any]] = {}
    operators = [
        DbtDepsOperator(task_id="deps", **common),
        DbtDebugOperator(task_id="debug", **common),
        DbtParseOperator(task_id="parse", **common),
        DbtSeedOperator(task_id="seed", full_refresh=True, **common),
        DbtRunOperator(task_id="run", select=["staging"], artifacts_dir=state, **common),
        DbtBuildOperator(task_id="build", select="marts", exclude=["test_name:relationships"], **common),
        DbtTestOperator(task_id="test", select="customers", push_artifacts=["run_results.json"], **common),
        DbtSnapshotOperator(task_id="snapshot", **common),
        DbtCompileOperator(task_id="compile", select="orders", **common),
        DbtLsOperator(task_id="ls", resource_types=["seed"], output_format="name", **common),
        DbtShowOperator(task_id="show", inline="select 42 as answer", limit=1, **common),
        DbtRunOperationOperator(
            task_id="run_operation", macro="row_count", args={"model": "orders"}, **common
        ),
        DbtSourceFreshnessOperator(task_id="freshness", **common),
        DbtDocsGenerateOperator(task_id="docs", **common),
        DbtCloneOperator(task_id="clone", state=state, select="stg_customers", **common),
        DbtRetryOperator(task_id="retry", state=state, **common),
        DbtOperator(
            task_id="generic",
            command="run --select stg_orders",
            **common,
        ),
    ]
    for operator in operators:
        returned[operator.task_id], ti = _execute(operator)
        pushed[operator.task_id] = ti.xcoms
    assert all(summary["success"] for summary in returned.values()), returned
    assert returned["ls"]["resources"] == ["raw_customers", "raw_orders", "raw_payments"]
    assert returned["seed"]["counts"] == {"success": 3}
    assert returned["build"]["counts"] == {"pass": 5, "success": 2}
    assert returned["test"]["counts"] == {"pass": 3}
    assert len(decode_artifact(pushed["test"]["run_results"])["results"]) == 3
    assert returned["snapshot"]["counts"] == {"success": 1}
    assert returned["clone"]["nodes"] == 1
    assert returned["generic"]["counts"] == {"success": 1}
    assert (project / "dbt_packages" / "jaffle_utils").exists()  # DbtDepsOperator installs in place
    assert (Path(state) / "run_results.json").is_file()


def test_a_failing_test_fails_the_task_naming_the_node(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    failing = project / "tests" / "customers_have_no_rows.sql"
    failing.write_text("select id from {{ ref('raw_customers') }}\n")
    common: dict[str, Any] = {
        "project_dir": str(project),
        "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "failing.duckdb")},
    }
    _execute(DbtSeedOperator(task_id="seed", **common))
    ti = RecordingTaskInstance()
    with pytest.raises(DbtCommandFailedError) as caught:
        DbtTestOperator(task_id="test", select="raw_customers", **common).execute(context={"ti": ti})  # type: ignore[arg-type]
    assert "test.jaffle_shop.customers_have_no_rows [fail]: Got 10 results" in str(caught.value)
    summary = ti.xcoms["dbt_summary"]
    assert summary["success"] is False
    assert [n["unique_id"] for n in summary["failed_nodes"]] == ["test.jaffle_shop.customers_have_no_rows"]


def test_profile_from_an_airflow_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_project(tmp_path / "project")
    warehouse = tmp_path / "from_connection.duckdb"
    connection = {"conn_type": "duckdb", "host": str(warehouse), "schema": "main"}
    monkeypatch.setenv("AIRFLOW_CONN_JAFFLE_DUCKDB", json.dumps(connection))
    operator = DbtBuildOperator(
        task_id="build",
        project_dir=str(project),
        profile_conn_id="jaffle_duckdb",
        profile_overrides={"threads": 2},
        select=["raw_customers", "stg_customers"],
    )
    logger = logging.getLogger("airflow.task.operators.airflow_dbt_provider.dbt")
    with recording(logger) as log:
        summary, _ = _execute(operator)
    assert summary["counts"] == {"pass": 2, "success": 2}
    assert "Concurrency: 2 threads (target='airflow')" in log.lines
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from main.stg_customers").fetchone() == (10,)


def test_bad_arguments_fail_early_with_clear_messages(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dbt deps does not accept select"):
        DbtDepsOperator(task_id="deps", project_dir=str(tmp_path), select="x")
    with pytest.raises(ValueError, match="dbt test does not accept full_refresh"):
        DbtTestOperator(task_id="test", project_dir=str(tmp_path), full_refresh=True)
    with pytest.raises(ValueError, match="push_artifacts"):
        DbtRunOperator(task_id="run", project_dir=str(tmp_path), push_artifacts=["secrets.json"])
    with pytest.raises(ValueError, match="needs command="):
        DbtOperator(task_id="generic", project_dir=str(tmp_path))
    missing = DbtRunOperator(task_id="run", project_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DbtConfigurationError, match="nowhere' does not exist; set project_dir"):
        missing.execute(context={})  # type: ignore[arg-type]


def test_large_artifacts_are_compressed_for_xcom() -> None:
    small = json.dumps({"results": []}).encode()
    assert encode_artifact(small) == {"results": []}
    large = json.dumps({"results": [{"unique_id": f"model.p.m{i}"} for i in range(5000)]}).encode()
    encoded = encode_artifact(large)
    assert encoded["encoding"] == "gzip+base64"
    assert len(json.dumps(encoded)) < len(large) / 3
    assert decode_artifact(encoded) == json.loads(large)
