"""`make demo`'s kill-while-deferred step: a deferrable dbt Cloud run that the demo marks failed.

The demo triggers it with the emulator's long job (``conf={"job_id": ...}``), waits until the
task is deferred and the triggerer polls its run, marks the task failed through the REST API as a
user would in the UI, and fails unless dbt Cloud (the emulator) then shows the run cancelled.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator

with DAG(
    dag_id="dbt_cloud_kill_demo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["dbt-cloud", "demo"],
):
    DbtCloudRunJobOperator(
        task_id="run_job",
        job_id="{{ dag_run.conf['job_id'] }}",
        deferrable=True,
        check_interval=2,
    )
