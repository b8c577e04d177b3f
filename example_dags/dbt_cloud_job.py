"""Run a dbt Cloud job, wait for it in the triggerer, then fetch its ``run_results.json``.

1. ``trigger_job`` starts the job (looked up by project, environment and job name) and returns at
   once (``wait_for_termination=False``); the run id goes to XCom as ``job_run_id`` and is kept in
   the task state store, so a retry of this task never starts a second run.
2. ``wait_for_run`` checks the run once and defers to the triggerer until it ends, freeing the
   worker slot; it fails with the failing steps' logs if the run fails.
3. ``get_run_results`` downloads the run's ``run_results.json``.

Connection ``dbt_cloud_api_default`` (type ``dbt_cloud_api``): login = account id, password = API
token, host = your Access URL. The default params name the job of the emulator's default world, so
``make demo`` runs this DAG offline against ``dbt-cloud-emulator``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudGetRunArtifactOperator, DbtCloudRunJobOperator
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudRunSensor

ARTIFACTS_DIR = os.environ.get(
    "DBT_CLOUD_ARTIFACTS_DIR", os.path.join(tempfile.gettempdir(), "dbt_cloud_artifacts")
)
POKE_INTERVAL = float(os.environ.get("DBT_CLOUD_EXAMPLE_POKE_INTERVAL", "10"))
RUN_ID = "{{ ti.xcom_pull(task_ids='trigger_job', key='job_run_id') }}"

with DAG(
    dag_id="dbt_cloud_job",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["dbt", "dbt-cloud", "example"],
    doc_md=__doc__,
    params={
        "project_name": Param("jaffle_shop", type="string"),
        "environment_name": Param("Production", type="string"),
        "job_name": Param("jaffle_shop build", type="string"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
):
    trigger_job = DbtCloudRunJobOperator(
        task_id="trigger_job",
        project_name="{{ params.project_name }}",
        environment_name="{{ params.environment_name }}",
        job_name="{{ params.job_name }}",
        wait_for_termination=False,
    )

    wait_for_run = DbtCloudRunSensor(
        task_id="wait_for_run",
        run_id=RUN_ID,
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=60 * 60,
    )

    get_run_results = DbtCloudGetRunArtifactOperator(
        task_id="get_run_results",
        run_id=RUN_ID,
        path="run_results.json",
        output_dir=ARTIFACTS_DIR,
    )

    trigger_job >> wait_for_run >> get_run_results
