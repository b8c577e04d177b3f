"""``per_node`` mode in real DAG runs (``dag.test()``): real dbt on DuckDB, real retries and Assets."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG
from support.cloud_dags import run_dag
from support.dbt_projects import copy_project

from airflow_dbt_provider.operators.dbt import decode_artifact
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

STG_ORDERS = "model.jaffle_shop.stg_orders"
GUARD_TEST = "test.jaffle_shop.assert_stg_orders_released"


def add_guarded_test(project: Path, warehouse: Path) -> None:
    """A singular test on ``stg_orders`` that fails until ``main.release.ok`` is 1."""
    (project / "tests" / "assert_stg_orders_released.sql").write_text(
        "select * from {{ ref('stg_orders') }} where (select max(ok) from main.release) = 0\n"
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create or replace table main.release as select 0 as ok")


@pytest.mark.usefixtures("airflow_db")
def test_per_node_runs_green_and_a_failing_test_fails_only_its_node(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    warehouse = tmp_path / "per_node.duckdb"
    add_guarded_test(project, warehouse)
    retried: list[str] = []

    def release(context: Any) -> None:
        """Between the tries: fix the data, as an engineer would before clearing the task."""
        retried.append(context["ti"].task_id)
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update main.release set ok = 1")

    with DAG("dbt_task_group_per_node", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        group = DbtTaskGroup(
            group_id="jaffle",
            project_dir=project,
            cache_dir=tmp_path / "render-cache",
            operator_args={
                "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
                "push_artifacts": ["run_results.json"],
                "retries": 1,
                "retry_delay": timedelta(seconds=0),
                "on_retry_callback": release,
            },
        )
    node_ids = {uid: task.task_id for uid, task in group.node_tasks.items()}
    result = run_dag(dag)
    states = {task_id: result.state(task_id) for task_id in node_ids.values()}
    assert set(states.values()) == {"success"}, states
    # The failing test failed exactly its node's task, once; nothing else was tried twice.
    assert retried == ["jaffle.stg_orders"]
    tries = {task_id: result.try_number(task_id) for task_id in node_ids.values()}
    assert tries == {task_id: 2 if task_id == "jaffle.stg_orders" else 1 for task_id in node_ids.values()}
    # dbt's own results: the retry built only stg_orders and its single-parent tests.
    second = decode_artifact(result.xcom("jaffle.stg_orders", "run_results"))
    statuses = {r["unique_id"]: r["status"] for r in second["results"]}
    assert statuses[STG_ORDERS] == "success"
    assert statuses[GUARD_TEST] == "pass"
    assert {uid.split(".")[0] for uid in statuses} == {"model", "test"}
    assert {uid for uid in statuses if uid.startswith("model.")} == {STG_ORDERS}
    orders = decode_artifact(result.xcom("jaffle.orders", "run_results"))
    assert {r["unique_id"] for r in orders["results"] if not r["unique_id"].startswith("test.")} == {
        "model.jaffle_shop.orders"
    }
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from main.customers").fetchone() == (10,)
    # One Asset event per built relation, from its own node task.
    expected = {task.outlets[0].uri for task in group.node_tasks.values() if task.outlets}
    assert len(expected) == 9
    assert _asset_event_uris(dag.dag_id, result.run_id) == expected


def _asset_event_uris(dag_id: str, run_id: str) -> set[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        )
        return {row[0] for row in rows}
