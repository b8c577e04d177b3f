"""The local dbt example DAG (seed → build → docs) on the Celery deployment's PostgreSQL warehouse.

``example_dags/dbt_local_duckdb.py`` as a team on the CeleryExecutor runs it: the warehouse is a
server every worker reaches (a DuckDB file cannot be shared by two machines), the profile comes
from the Airflow connection ``celery_warehouse`` (an ``AIRFLOW_CONN_*`` variable on every machine),
and each task is routed to a worker by its queue — seed and docs on ``worker_a``, build on
``worker_b`` — so one DAG run crosses machines. ``artifacts_dir`` is relative to each worker's own
``$AIRFLOW_HOME``, as it would be on separate machines.
"""

from __future__ import annotations

import os
from datetime import datetime
from importlib import resources
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.operators.dbt import (
    DbtBuildOperator,
    DbtDocsGenerateOperator,
    DbtSeedOperator,
)

PROJECT_DIR = Path(str(resources.files("airflow_dbt_provider.testing") / "jaffle_shop"))
AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
ARTIFACTS_DIR = str(AIRFLOW_HOME / "dbt-artifacts" / "jaffle_shop" / "{{ run_id }}")

with DAG(
    dag_id="celery_dbt_local",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dbt", "dbt-core", "celery", "e2e"],
    default_args={
        "project_dir": str(PROJECT_DIR),
        "profile_conn_id": "celery_warehouse",
        "profile_overrides": {"schema": "local_dag"},
        "retries": 0,
    },
    doc_md=__doc__,
) as dag:
    seed = DbtSeedOperator(task_id="seed", queue="worker_a")
    build = DbtBuildOperator(
        task_id="build",
        queue="worker_b",
        exclude="resource_type:seed",
        push_artifacts=["run_results.json"],
        artifacts_dir=f"{ARTIFACTS_DIR}/build",
        asset_alias="celery_jaffle_shop_models",
    )
    docs = DbtDocsGenerateOperator(task_id="docs", queue="worker_a", artifacts_dir=f"{ARTIFACTS_DIR}/docs")

    seed >> build >> docs
