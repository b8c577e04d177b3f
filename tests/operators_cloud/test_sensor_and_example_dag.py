"""DbtCloudRunSensor (blocking and deferrable) and the example DAG, through ``dag.test()``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from support.cloud_dags import DagResult, finish_runs_once_deferred, make_dag, run_dag
from support.cloud_operators import posts, run_gets

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudJobRunSensor, DbtCloudRunSensor
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]


def start(client: DbtCloudClient, emulator: DbtCloudEmulator, job: str) -> int:
    return client.trigger_run(emulator.world.job_ids[job], TriggerRunOptions(cause="sensor test")).id


def sense(name: str, run_id: int, **kwargs: object) -> DagResult:
    with make_dag(f"dbt_cloud_sensor_{name}") as dag:
        DbtCloudRunSensor(task_id="wait", run_id=str(run_id), poke_interval=0.1, **kwargs)  # type: ignore[arg-type]
    return run_dag(dag)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_succeeds_when_the_run_succeeds(
    emulator: DbtCloudEmulator, client: DbtCloudClient, deferrable: bool
) -> None:
    with finish_runs_once_deferred(emulator) if deferrable else contextlib.nullcontext():
        run_id = start(client, emulator, "success")
        result = sense(f"success_{deferrable}", run_id, deferrable=deferrable)
    assert result.state("wait") == "success"
    assert result.xcom("wait", "job_run_url").endswith(f"/runs/{run_id}/")
    assert (result.deferred_runs("wait") == [run_id]) is deferrable
    assert posts(emulator, "/cancel/") == []


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_fails_with_the_failing_step_when_the_run_errors(
    emulator: DbtCloudEmulator, client: DbtCloudClient, deferrable: bool
) -> None:
    run_id = start(client, emulator, "fail")
    result = sense(f"error_{deferrable}", run_id, deferrable=deferrable)
    assert result.state("wait") == "failed"
    (error,) = result.errors("wait")
    assert "assert_order_amount_not_negative" in error


def test_deferrable_timeout_fails_and_leaves_the_run_alone(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    run_id = start(client, emulator, "long")
    result = sense("timeout", run_id, deferrable=True, timeout=1)
    assert result.state("wait") == "failed"
    (error,) = result.errors("wait")
    assert "did not finish within the sensor's timeout" in error
    assert posts(emulator, "/cancel/") == []
    assert not client.get_run(run_id).is_terminal


def test_cancelled_run_fails_the_sensor(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    run_id = start(client, emulator, "long")
    client.cancel_run(run_id)
    result = sense("cancelled", run_id)
    assert result.state("wait") == "failed"
    assert "cancelled in dbt Cloud" in result.errors("wait")[0]


def test_official_sensor_name_is_the_same_class() -> None:
    assert DbtCloudJobRunSensor is DbtCloudRunSensor


def test_example_dag_defers_and_fetches_the_artifact(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """example_dags/dbt_cloud_job.py: trigger -> deferrable sensor -> artifact, on the emulator."""
    monkeypatch.setenv("DBT_CLOUD_EXAMPLE_POKE_INTERVAL", "0.2")
    monkeypatch.setenv("DBT_CLOUD_ARTIFACTS_DIR", str(tmp_path))
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(Path(__file__).parents[2] / "example_dags" / "dbt_cloud_job.py"))
    assert not bag.import_errors
    with finish_runs_once_deferred(emulator):  # the sensor's first poke finds the run going
        result = run_dag(bag.get_dag("dbt_cloud_job"))
    assert [result.state(t) for t in ("trigger_job", "wait_for_run", "get_run_results")] == ["success"] * 3
    run_id = result.xcom("trigger_job", "job_run_id")
    assert len(posts(emulator, "/run/")) == 1
    assert result.deferred_runs("wait_for_run") == [run_id]
    assert len(run_gets(emulator, run_id)) >= 2  # the sensor's poke, then the trigger's polls
    written = Path(result.xcom("get_run_results", "return_value"))
    assert written.parent == tmp_path
    assert json.loads(written.read_text())["metadata"]["dbt_schema_version"].endswith("run-results/v6.json")
