"""Run a dbt Cloud job against the emulator with the OpenLineage provider on, events to a file.

Usage: ``python lineage_probe.py``. Started by test_openlineage.py with the OpenLineage settings in
its environment (see support/openlineage_probe.py); prints the task state and the causes of the
runs it triggered.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG
from support.cloud_dags import run_dag
from support.cloud_operators import CONN_ENV, SECRET_TOKEN, SPEED, connection_json, posts

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


def main() -> None:
    with DbtCloudEmulator(token=SECRET_TOKEN, speed=SPEED) as emulator:
        os.environ[CONN_ENV] = connection_json(emulator)
        with DAG("dbt_cloud_lineage_probe", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            DbtCloudRunJobOperator(
                task_id="run_job", job_id=emulator.world.job_ids["success"], check_interval=0.1,
                deferrable=False, openlineage_inject_parent_job_info=True,
                trigger_reason="A reason far longer than a cause may be. " * 10,
            )  # fmt: skip
        result = run_dag(dag)
        print(f"TASK_STATE={result.state('run_job')}", flush=True)
        print(f"TASK_ERRORS={result.errors('run_job')}", flush=True)
        for cause in (r.body["cause"] for r in posts(emulator, "/run/")):
            print(f"RUN_CAUSE={cause}", flush=True)


if __name__ == "__main__":
    main()
