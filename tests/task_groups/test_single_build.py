"""``single_build`` mode in real DAG runs (``dag.test()``): one dbt build, node tasks from its records."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG, AssetAlias
from support.cloud_dags import run_dag
from support.dbt_projects import copy_project
from task_groups.test_per_node import GUARD_TEST, STG_ORDERS, add_guarded_test

from airflow_dbt_provider.operators.dbt import decode_artifact
from airflow_dbt_provider.task_groups.dbt import PRODUCER_PRIORITY, DbtTaskGroup, group_asset_alias


@pytest.mark.usefixtures("airflow_db")
def test_single_build_reports_each_node_and_a_retry_builds_only_the_failed_one(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    warehouse = tmp_path / "single.duckdb"
    add_guarded_test(project, warehouse)
    retried: set[str] = set()

    def release(context: Any) -> None:
        """Fix the data when a node task fails (the producer's own retry fails again)."""
        retried.add(context["ti"].task_id)
        if context["ti"].task_id == "jaffle.dbt_build":
            return
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update main.release set ok = 1")

    with DAG("dbt_task_group_single_build", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        group = DbtTaskGroup(
            group_id="jaffle",
            project_dir=project,
            mode="single_build",
            cache_dir=tmp_path / "render-cache",
            operator_args={
                "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
                "push_artifacts": ["run_results.json"],
                "retries": 1,
                "retry_delay": timedelta(seconds=0),
                "on_retry_callback": release,
            },
        )
    producer = dag.task_dict["jaffle.dbt_build"]
    assert producer.priority_weight == PRODUCER_PRIORITY
    assert producer.downstream_task_ids == {"jaffle.end"}
    assert dag.task_dict["jaffle.end"].trigger_rule == "all_done"
    assert all(not t.upstream_task_ids & {"jaffle.dbt_build"} for t in group.node_tasks.values())
    alias = group_asset_alias(dag.dag_id, "jaffle")
    assert alias == "dbt:dbt_task_group_single_build.jaffle"
    result = run_dag(dag)
    node_tasks = {uid: t.task_id for uid, t in group.node_tasks.items()}
    states = {task_id: result.state(task_id) for task_id in node_tasks.values()}
    assert set(states.values()) == {"success"}, states
    assert result.state("jaffle.end") == "success"
    # The producer's build failed on the guard test, both tries; the node task failed with its message.
    assert result.try_number("jaffle.dbt_build") == 2
    assert result.state("jaffle.dbt_build") == "failed"
    # (Errors from the run's failure listener: Airflow 3.1's dag.test() gives callbacks no exception.)
    first_error = result.errors("jaffle.stg_orders")[0]
    assert first_error.startswith(f"dbt build (jaffle.dbt_build) failed {STG_ORDERS}")
    assert GUARD_TEST in first_error
    assert retried <= {"jaffle.stg_orders", "jaffle.dbt_build"}
    # Nodes the build finished ended from their records, without running dbt.
    record = result.xcom("jaffle.stg_customers", "return_value")
    assert record["source"] == "jaffle.dbt_build"
    assert record["status"] == "success"
    assert result.xcom("jaffle.stg_customers", "run_results") is None
    # The failed node's retry built only it and its tests; its skipped children built themselves.
    own = decode_artifact(result.xcom("jaffle.stg_orders", "run_results"))
    assert {r["unique_id"] for r in own["results"] if not r["unique_id"].startswith("test.")} == {STG_ORDERS}
    assert {r["status"] for r in own["results"]} <= {"success", "pass"}
    orders = decode_artifact(result.xcom("jaffle.orders", "run_results"))
    assert [r["unique_id"] for r in orders["results"] if r["unique_id"].startswith("model.")] == [
        "model.jaffle_shop.orders"
    ]
    assert result.try_number("jaffle.orders") == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from main.customers").fetchone() == (10,)
    # Assets: exactly one event per relation, from the task that built it: <group>.end for the
    # producer's builds (node tasks ending from a record emit none), the node task for its own.
    expected = {
        (
            task.node_uri,
            "jaffle.end" if result.xcom(task.task_id, "return_value").get("source") else task.task_id,
        )
        for task in group.node_tasks.values()
        if task.node_uri
    }
    assert len(expected) == 9
    assert {source for _, source in expected} > {"jaffle.end", "jaffle.stg_orders", "jaffle.orders"}
    assert asset_events(dag.dag_id, result.run_id) == sorted(expected)
    assert all(t.outlets == [AssetAlias(name=alias)] for t in group.node_tasks.values() if t.node_uri)
    assert dag.task_dict["jaffle.end"].outlets == [AssetAlias(name=alias)]


def asset_events(dag_id: str, run_id: str) -> list[tuple[str, str]]:
    """``(uri, source_task_id)`` of every Asset event the DAG run recorded."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.source_task_id)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        )
        return sorted((row[0], row[1]) for row in rows)
