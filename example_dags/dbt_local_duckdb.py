"""dbt Core on DuckDB, in process: seed → build → docs, daily.

Runs the jaffle-shop-like example project shipped in ``airflow_dbt_provider.testing`` against a
DuckDB file, so it works from a fresh checkout or an installed wheel with no warehouse at hand.
The file's location comes from ``$JAFFLE_SHOP_DUCKDB_PATH`` (default
``$AIRFLOW_HOME/jaffle_shop.duckdb``); the project directory itself is only read.
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
DUCKDB_PATH = os.environ.get("JAFFLE_SHOP_DUCKDB_PATH", str(AIRFLOW_HOME / "jaffle_shop.duckdb"))
ARTIFACTS_DIR = str(AIRFLOW_HOME / "dbt-artifacts" / "jaffle_shop" / "{{ run_id }}")

with DAG(
    dag_id="dbt_local_duckdb",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one DuckDB file: runs of this DAG must not write it at the same time
    tags=["dbt", "dbt-core", "example"],
    default_args={
        "project_dir": str(PROJECT_DIR),
        "env": {"JAFFLE_SHOP_DUCKDB_PATH": DUCKDB_PATH},
        "retries": 0,
    },
    doc_md=__doc__,
) as dag:
    seed = DbtSeedOperator(task_id="seed")
    build = DbtBuildOperator(
        task_id="build",
        exclude="resource_type:seed",
        push_artifacts=["run_results.json"],
        artifacts_dir=f"{ARTIFACTS_DIR}/build",
        # One Asset event per model, seed and snapshot built: downstream DAGs can be scheduled on
        # e.g. Asset("dbt://duckdb/jaffle_shop/main/customers") or on the alias itself.
        asset_alias="jaffle_shop_models",
    )
    docs = DbtDocsGenerateOperator(task_id="docs", artifacts_dir=f"{ARTIFACTS_DIR}/docs")

    seed >> build >> docs
