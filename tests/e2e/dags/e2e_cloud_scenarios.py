"""dbt Cloud DAGs for the end-to-end scenarios (tests/e2e/test_cloud_scenarios.py).

Every DAG reads the job to run from the run's conf (``{"job_id": 40003}``; the emulator's
default-world ``long`` job by default), so each test triggers its own DAG run with its own job
while the emulator's speed decides how long the run takes. They all use one connection,
``dbt_cloud_e2e_scenarios``, which the tests create through the REST API (pointing at the
in-process emulator, trusting its CA through the connection's ``ca_bundle`` extra). Short check
intervals keep the scenarios quick; production DAGs keep the 60 s default.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import dag, task

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudRunSensor

CONN_ID = "dbt_cloud_e2e_scenarios"
JOB_ID = "{{ dag_run.conf.get('job_id', 40003) }}"


@dag(dag_id="e2e_cloud_operator_and_sensor", schedule=None, catchup=False, tags=["e2e", "dbt-cloud"])
def e2e_cloud_operator_and_sensor() -> None:
    """Scenario 2: a deferrable run, and a fire-and-forget run watched by a deferrable sensor."""
    DbtCloudRunJobOperator(
        task_id="run_job", dbt_cloud_conn_id=CONN_ID, job_id=JOB_ID, deferrable=True, check_interval=1
    )
    start = DbtCloudRunJobOperator(
        task_id="start_job", dbt_cloud_conn_id=CONN_ID, job_id=JOB_ID, wait_for_termination=False
    )
    wait = DbtCloudRunSensor(
        task_id="wait_for_run",
        dbt_cloud_conn_id=CONN_ID,
        run_id="{{ ti.xcom_pull(task_ids='start_job', key='job_run_id') }}",
        deferrable=True,
        poke_interval=1,
    )
    start >> wait


@dag(dag_id="e2e_cloud_deferred_job", schedule=None, catchup=False, tags=["e2e", "dbt-cloud"])
def e2e_cloud_deferred_job() -> None:
    """Scenarios 3-5: one deferrable run to kill, to move between triggerers, to fault."""
    DbtCloudRunJobOperator(
        task_id="run_job", dbt_cloud_conn_id=CONN_ID, job_id=JOB_ID, deferrable=True, check_interval=1
    )


@dag(dag_id="e2e_cloud_worker_dies", schedule=None, catchup=False, tags=["e2e", "dbt-cloud"])
def e2e_cloud_worker_dies() -> None:
    """Scenario 6: a blocking run whose task process a test SIGKILLs; one quick retry."""
    DbtCloudRunJobOperator(
        task_id="run_job",
        dbt_cloud_conn_id=CONN_ID,
        job_id=JOB_ID,
        deferrable=False,
        check_interval=1,
        retry_from_failure=True,
        retries=1,
        retry_delay=dt.timedelta(seconds=1),
    )


@dag(dag_id="e2e_cloud_fan_out", schedule=None, catchup=False, tags=["e2e", "dbt-cloud"])
def e2e_cloud_fan_out() -> None:
    """Scenario 7: ``conf["runs"]`` (default 50) mapped deferrable runs waiting side by side."""

    @task
    def job_ids(**context: Any) -> list[int]:
        conf = context["dag_run"].conf or {}
        return [int(conf.get("job_id", 40003))] * int(conf.get("runs", 50))

    DbtCloudRunJobOperator.partial(
        task_id="run_job", dbt_cloud_conn_id=CONN_ID, deferrable=True, check_interval=2
    ).expand(job_id=job_ids())


e2e_cloud_operator_and_sensor()
e2e_cloud_deferred_job()
e2e_cloud_worker_dies()
e2e_cloud_fan_out()
