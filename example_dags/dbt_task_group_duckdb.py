"""The example dbt project as Airflow tasks: one task per seed, model and snapshot, on DuckDB.

``DbtTaskGroup`` renders the jaffle-shop-like project shipped in ``airflow_dbt_provider.testing``
from its manifest (parsed once and cached when the project has none). ``single_build`` runs one
in-process ``dbt build`` (the ``jaffle_shop.dbt_build`` task) and each node task ends with its own
node's result — retry or clear a node task to build that node alone. ``single_build`` suits
DuckDB, which allows one writing process at a time: only the producer writes while the node tasks
wait. For ``mode="per_node"`` (each node task builds its node, in parallel) use a warehouse with a
server, or ``max_active_tasks=1``.
"""

from __future__ import annotations

import os
from datetime import datetime
from importlib import resources
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

PROJECT_DIR = Path(str(resources.files("airflow_dbt_provider.testing") / "jaffle_shop"))
AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
DUCKDB_PATH = os.environ.get(
    "JAFFLE_SHOP_TASK_GROUP_DUCKDB_PATH", str(AIRFLOW_HOME / "jaffle_shop_task_group.duckdb")
)

with DAG(
    dag_id="dbt_task_group_duckdb",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one DuckDB file: runs of this DAG must not write it at the same time
    tags=["dbt", "dbt-core", "example"],
    doc_md=__doc__,
) as dag:
    DbtTaskGroup(
        group_id="jaffle_shop",
        project_dir=PROJECT_DIR,
        mode="single_build",
        # Every task gets these, exactly as the dbt operators take them.
        operator_args={"env": {"JAFFLE_SHOP_DUCKDB_PATH": DUCKDB_PATH}, "retries": 1},
    )
