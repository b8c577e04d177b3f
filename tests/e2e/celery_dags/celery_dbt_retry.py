"""``retry_from_failure`` across workers: the first try fails one model, the retry runs elsewhere.

The task is routed to the queue ``retry_pool``, which the test has only ``worker_a`` consume at
first; while try 1 waits at the project's gate, the test drains ``worker_a`` of that queue and has
``worker_b`` consume it instead (Celery's ``cancel_consumer``/``add_consumer``, as an operator
drains a machine). Try 1 then fails on ``flaky`` (``downstream`` is skipped); the retry can only
land on ``worker_b``, a machine with none of try 1's files, and must run just those two nodes
(``dbt retry``). The state for it crosses machines through the task state store on Airflow 3.3;
before 3.3, through ``artifacts_dir``, which is on object storage every worker reaches (the
loopback S3 server the test starts, bucket :data:`ARTIFACTS_BUCKET`, connection ``adp_s3``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.operators.dbt import DbtBuildOperator

PROJECT_DIR = Path(__file__).resolve().parent / "retry_project"
#: The bucket tests/e2e/test_celery.py creates on its S3 server; one fixed path for every run of
#: the DAG, as users set it (the retry state file names the task instance it belongs to).
ARTIFACTS_BUCKET = "adp-celery-e2e"
ARTIFACTS_URL = f"s3://adp_s3@{ARTIFACTS_BUCKET}/celery_dbt_retry/build"

with DAG(
    dag_id="celery_dbt_retry",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dbt", "dbt-core", "celery", "e2e"],
    doc_md=__doc__,
) as dag:
    DbtBuildOperator(
        task_id="build",
        queue="retry_pool",
        project_dir=str(PROJECT_DIR),
        profile_conn_id="celery_warehouse",
        profile_overrides={"schema": "retry_dag"},
        retry_from_failure=True,
        artifacts_dir=ARTIFACTS_URL,
        retries=1,
        retry_delay=timedelta(seconds=1),
        push_artifacts=["run_results.json"],
    )
