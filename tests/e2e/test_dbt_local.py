"""Scenario 1: the local dbt example DAG (seed → build, with tests → docs) on DuckDB, for real.

The DAG runs as a user runs it: unpaused through the REST API, the scheduler creates its run,
LocalExecutor workers run dbt in the task processes, and everything is read back through the
API — states, dbt's per-node progress lines in the task logs, the run summary in XCom, and the
Asset events of the built models.
"""

from __future__ import annotations

import re

import pytest
from support.airflow_api import AirflowApi

pytestmark = pytest.mark.e2e

DAG_ID = "dbt_local_duckdb"
#: dbt's per-node progress lines, e.g. "3 of 23 OK created sql view model main.stg_orders".
PROGRESS = re.compile(r"\b\d+ of \d+ (START|OK|PASS)\b")


def test_local_dbt_dag_succeeds_with_logs_and_summary(airflow: AirflowApi) -> None:
    airflow.wait_for_dag(DAG_ID)
    # @daily with catchup=False: unpausing creates exactly one scheduled run, which has the
    # data interval the DAG's `ds`-based vars need.
    airflow.set_paused(DAG_ID, False)
    runs = airflow.wait_for("the scheduled run", lambda: airflow.dag_runs(DAG_ID) or None, timeout=120)
    assert len(runs) == 1
    run_id = runs[0]["dag_run_id"]
    try:
        run = airflow.wait_for_dag_run(DAG_ID, run_id, timeout=420)
    finally:
        airflow.set_paused(DAG_ID, True)
    assert run["state"] == "success", airflow.describe_run(DAG_ID, run_id)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    assert states == {"seed": "success", "build": "success", "docs": "success"}

    build_log = airflow.task_log_text(DAG_ID, run_id, "build")
    progress = [line for line in build_log.splitlines() if PROGRESS.search(line)]
    assert any("customers" in line for line in progress), build_log[-3000:]
    assert any(" PASS " in line for line in progress), "dbt's data tests ran in build"

    summary = airflow.xcom(DAG_ID, run_id, "build")
    assert summary["command"] == "build"
    assert summary["success"] is True
    assert summary["failed_nodes"] == []
    assert summary["nodes"] > 0
    # Assets registered for the built models, through the build task's AssetAlias.
    events = airflow.asset_events(source_dag_id=DAG_ID, source_run_id=run_id, source_task_id="build")
    built = {event["uri"].rsplit("/", 1)[-1] for event in events}
    assert {"customers", "orders", "stg_orders"} <= built, sorted(built)
    seed_summary = airflow.xcom(DAG_ID, run_id, "seed")
    assert seed_summary["command"] == "seed"
    assert seed_summary["nodes"] == 3
