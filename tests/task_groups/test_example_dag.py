"""example_dags/dbt_task_group_duckdb.py under ``dag.test()``: the shipped DbtTaskGroup example, green.

Part of the minimum lane (``make test-min``) and of ``make test-matrix``, so the example runs on every
Airflow and dbt-core the provider supports, not only the newest.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pytest
from support.cloud_dags import EXAMPLE_DAGS, run_dag
from task_groups.test_single_build import asset_events

from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup


@pytest.mark.usefixtures("airflow_db")
def test_example_task_group_dag_runs_green(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "example_task_group.duckdb"
    monkeypatch.setenv("JAFFLE_SHOP_TASK_GROUP_DUCKDB_PATH", str(warehouse))
    spec = importlib.util.spec_from_file_location(
        "dbt_task_group_duckdb", EXAMPLE_DAGS / "dbt_task_group_duckdb.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    groups = [g for g in dag.task_group.children.values() if isinstance(g, DbtTaskGroup)]
    assert len(groups) == 1
    node_tasks = {t.task_id for t in groups[0].node_tasks.values()}
    assert {"jaffle_shop.customers", "jaffle_shop.orders", "jaffle_shop.raw_customers"} <= node_tasks
    result = run_dag(dag)
    states = {task_id: result.state(task_id) for task_id in dag.task_dict}
    assert set(states.values()) == {"success"}, states
    # Node tasks ended from the producer's records: none ran dbt itself.
    for task_id in node_tasks:
        assert result.xcom(task_id, "return_value")["source"] == "jaffle_shop.dbt_build", task_id
    # One Asset event per relation, all from <group>.end: the producer built every node.
    uris = sorted(t.node_uri for t in groups[0].node_tasks.values() if t.node_uri)
    assert asset_events(dag.dag_id, result.run_id) == [(uri, "jaffle_shop.end") for uri in uris]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from main.customers").fetchone() == (10,)
