"""dbt Cloud DAGs for the Celery deployment (tests/e2e/test_celery.py), against the emulator.

Like ``tests/e2e/dags/e2e_cloud_scenarios.py`` (same connection, job from the run's conf), with
each task routed to a worker by queue: a deferred run whose task starts on one machine, waits in
the triggerer and resumes on a worker again, and a run started on one worker and watched by a
deferrable sensor on the other.
"""

from __future__ import annotations

from airflow.sdk import dag

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudRunSensor

CONN_ID = "dbt_cloud_e2e_scenarios"
JOB_ID = "{{ dag_run.conf.get('job_id', 40003) }}"


@dag(dag_id="celery_cloud_operator_and_sensor", schedule=None, catchup=False, tags=["e2e", "celery"])
def celery_cloud_operator_and_sensor() -> None:
    DbtCloudRunJobOperator(
        task_id="run_job",
        queue="worker_a",
        dbt_cloud_conn_id=CONN_ID,
        job_id=JOB_ID,
        deferrable=True,
        check_interval=1,
    )
    start = DbtCloudRunJobOperator(
        task_id="start_job",
        queue="worker_a",
        dbt_cloud_conn_id=CONN_ID,
        job_id=JOB_ID,
        wait_for_termination=False,
    )
    wait = DbtCloudRunSensor(
        task_id="wait_for_run",
        queue="worker_b",
        dbt_cloud_conn_id=CONN_ID,
        run_id="{{ ti.xcom_pull(task_ids='start_job', key='job_run_id') }}",
        deferrable=True,
        poke_interval=1,
    )
    start >> wait


@dag(dag_id="celery_cloud_deferred_job", schedule=None, catchup=False, tags=["e2e", "celery"])
def celery_cloud_deferred_job() -> None:
    """One deferrable run, started on ``worker_b``, to kill while it waits in the triggerer."""
    DbtCloudRunJobOperator(
        task_id="run_job",
        queue="worker_b",
        dbt_cloud_conn_id=CONN_ID,
        job_id=JOB_ID,
        deferrable=True,
        check_interval=1,
    )


celery_cloud_operator_and_sensor()
celery_cloud_deferred_job()
