"""A dbt Cloud task that fails before any run exists logs its error, and no ``XCom not found``.

Airflow asks every extra link for its URL when a task ends; the "dbt Cloud run" link used to read
the ``job_run_url`` XCom even when the task never got to push it, and the Execution API client logs
each miss as ``[error] XCom not found ... key='job_run_url'``. Checked on the captured task log of
real ``dag.test()`` runs against the emulator; the link still works where a run exists, also after a
deferral (read back from the XCom in the resumed process).
"""

from __future__ import annotations

import pytest
from support.cloud_dags import finish_runs_once_deferred, make_dag, run_dag

from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudRunSensor
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]
NOISE = "XCom not found"
LINK_KEY = "_link_DbtCloudRunLink"


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_run_job_failing_before_a_run_exists_logs_no_xcom_miss(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str], deferrable: bool
) -> None:
    with make_dag(f"dbt_cloud_noise_job_{deferrable}") as dag:
        DbtCloudRunJobOperator(task_id="run", job_id=99999, deferrable=deferrable, check_interval=0.1)
    result = run_dag(dag)
    log = capfd.readouterr().out
    assert result.state("run") == "failed"
    assert f"dbt Cloud found no job 99999 in account {emulator.account_id} (HTTP 404)" in log
    assert NOISE not in log
    assert result.xcom("run", LINK_KEY) == ""  # Airflow hides the button


def test_sensor_failing_before_it_finds_the_run_logs_no_xcom_miss(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with make_dag("dbt_cloud_noise_sensor") as dag:
        DbtCloudRunSensor(task_id="wait", run_id=99999, poke_interval=0.1)
    result = run_dag(dag)
    log = capfd.readouterr().out
    assert result.state("wait") == "failed"
    assert f"dbt Cloud found no run 99999 in account {emulator.account_id} (HTTP 404)" in log
    assert NOISE not in log


def test_the_link_still_points_at_the_run_after_a_deferral(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with make_dag("dbt_cloud_noise_deferred_link") as dag:
        DbtCloudRunJobOperator(
            task_id="run", job_id=emulator.world.job_ids["success"], deferrable=True, check_interval=0.1
        )
    with finish_runs_once_deferred(emulator):
        result = run_dag(dag)
    assert result.state("run") == "success"
    assert result.deferred_runs("run") == [result.xcom("run", "job_run_id")]
    url = result.xcom("run", "job_run_url")
    assert url.endswith(f"/runs/{result.xcom('run', 'job_run_id')}/")
    assert result.xcom("run", LINK_KEY) == url
    assert NOISE not in capfd.readouterr().out
