"""Run a seed task and a run task with the OpenLineage provider on, writing events to a file.

Usage: ``python lineage_probe.py PROJECT_DIR WAREHOUSE``. A separate process because the
OpenLineage listener is registered when Airflow loads its plugins, once per process, from the
``AIRFLOW__OPENLINEAGE__*`` settings the test passes in the environment.
"""

from __future__ import annotations

import sys
from datetime import datetime

from airflow.sdk import DAG
from support.cloud_dags import run_dag

from airflow_dbt_provider.operators.dbt import DbtRunOperator, DbtSeedOperator


def main(project_dir: str, warehouse: str) -> None:
    common = {"project_dir": project_dir, "env": {"JAFFLE_SHOP_DUCKDB_PATH": warehouse}}
    with DAG("dbt_lineage_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
        seed = DbtSeedOperator(task_id="seed", select="raw_customers", **common)
        run = DbtRunOperator(task_id="run", select="stg_customers", **common)
        seed >> run
    result = run_dag(dag)
    print(f"TASK_STATES={result.state('seed')},{result.state('run')}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
