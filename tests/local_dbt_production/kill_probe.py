"""Run one dbt task through Airflow's task runner (``dag.test()``) so a test can SIGTERM it.

Usage: ``python kill_probe.py PROJECT_DIR [DBT_EXECUTABLE]``. The profile comes from the Airflow
connection ``cancel_pg`` (``AIRFLOW_CONN_CANCEL_PG`` in the environment). Prints
``TASK_STATE=<state>`` when the run ends, so the test can tell "killed and failed" from "never
started" or "finished".
"""

from __future__ import annotations

import sys
from datetime import datetime

from airflow.sdk import DAG
from support.cloud_dags import run_dag

from airflow_dbt_provider.operators.dbt import DbtRunOperator


def main(project_dir: str, dbt_executable: str | None) -> None:
    with DAG("dbt_kill_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
        DbtRunOperator(
            task_id="sleepy",
            project_dir=project_dir,
            profile_conn_id="cancel_pg",
            select="sleepy",
            dbt_executable=dbt_executable,
            install_deps=False,
        )
    result = run_dag(dag)
    print(f"TASK_STATE={result.state('sleepy')}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
