"""The DbtTaskGroup example (``single_build``) on the Celery deployment, its tasks on both workers.

``example_dags/dbt_task_group_duckdb.py`` on the PostgreSQL warehouse, rendered on every machine
that parses the file (the dag-processor and each worker, each from its own cache). The producer
``jaffle_shop.dbt_build`` runs on ``worker_b`` and ``jaffle_shop.end`` on ``worker_a``; the node
tasks alternate between ``worker_a`` and ``worker_b`` (in task-id order), so a node task on one
machine ends with the record the producer published from the other one. On Airflow >= 3.3 node
tasks start and end in the triggerer (``start_from_trigger``), on no worker: there the end task is
what ``worker_a`` runs of the group.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

PROJECT_DIR = Path(str(resources.files("airflow_dbt_provider.testing") / "jaffle_shop"))
WORKERS = ("worker_a", "worker_b")

with DAG(
    dag_id="celery_dbt_task_group",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dbt", "dbt-core", "celery", "e2e"],
    doc_md=__doc__,
) as dag:
    group = DbtTaskGroup(
        group_id="jaffle_shop",
        project_dir=PROJECT_DIR,
        mode="single_build",
        profile_conn_id="celery_warehouse",
        profile_overrides={"schema": "task_group"},
        operator_args={"retries": 1},
    )
    group.producer.queue = "worker_b"
    dag.get_task("jaffle_shop.end").queue = "worker_a"  # emits the Asset events of worker_b's build
    for index, task in enumerate(sorted(group.node_tasks.values(), key=lambda t: t.task_id)):
        task.queue = WORKERS[index % len(WORKERS)]
