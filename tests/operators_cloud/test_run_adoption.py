"""A retry adopts its own dbt Cloud run with or without the task state store, through ``dag.test()``.

Airflow 3.1/3.2 have no task state store and a clear may wipe it (apache/airflow #72100): the run's
cause marker finds the run instead. "No store" is the path the Airflow < 3.3 detection takes
(``has_task_state_store()`` false); a wiped store is this Airflow's store emptied between tries.
Retries are real (``retries=``, ``execution_timeout`` kills a try, as a dying worker would).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from support.cloud_dags import DagResult, make_dag, run_dag
from support.cloud_operators import posts, run_gets

from airflow_dbt_provider import task_state
from airflow_dbt_provider.cloud import DbtCloudClient, RunStatus, TriggerRunOptions
from airflow_dbt_provider.cloud.options import MAX_CAUSE_LENGTH
from airflow_dbt_provider.cloud.run_start import RunMark
from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]

NO_STORE_LINE = "this Airflow has no task state store"


@pytest.fixture(params=["no_store", "store"])
def store_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no_store":
        monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
    elif not task_state.has_task_state_store():
        pytest.skip("this Airflow has no task state store (3.3+)")
    return str(request.param)


def store_rows(dag_id: str) -> int:
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:  # Airflow < 3.3: no store, no table
        return 0
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(TaskStateStoreModel).filter_by(dag_id=dag_id).count()


def wipe_store(context: Any) -> None:
    """An ``on_retry_callback`` that empties the task's state store, as a clear may (#72100)."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    ti = context["ti"]
    with create_session() as session:
        wiped = session.query(TaskStateStoreModel).filter_by(dag_id=ti.dag_id, task_id=ti.task_id).delete()
    WIPED.append(wiped)


WIPED: list[int] = []


def killed_then_adopted(emulator: DbtCloudEmulator, name: str, **kwargs: Any) -> DagResult:
    """Try 1 triggers a long run and is killed without cancelling it; try 2 must adopt it."""
    with make_dag(f"dbt_cloud_adopt_{name}", retries=1) as dag:
        DbtCloudRunJobOperator(
            task_id="run",
            job_id=emulator.world.job_ids["long"],
            check_interval=0.1,
            cancel_on_kill=False,
            execution_timeout=timedelta(seconds=3),
            **kwargs,
        )
    return run_dag(dag)


def assert_adopted(emulator: DbtCloudEmulator, result: DagResult) -> int:
    assert result.try_number("run") == 2  # (try 2 times out too: the run outlasts both)
    (triggered,) = posts(emulator, "/run/")  # one run for both tries
    assert posts(emulator, "/retry/") == []
    run_id = int(result.xcom("run", "job_run_id"))  # pushed by try 2
    assert triggered.time < result.ti("run").start_date.timestamp()  # try 1 triggered it
    assert run_gets(emulator, run_id)
    return run_id


def test_retry_adopts_its_in_flight_run(
    emulator: DbtCloudEmulator, store_mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    result = killed_then_adopted(emulator, f"in_flight_{store_mode}")
    assert_adopted(emulator, result)
    out = capfd.readouterr().out
    if store_mode == "no_store":
        assert store_rows(result.dag_id) == 0  # nothing was written: the marker alone found the run
        assert out.count(NO_STORE_LINE) == 2  # said once per try
        assert "(found by its cause)" in out
    else:
        assert store_rows(result.dag_id) == 1
        assert NO_STORE_LINE not in out


def test_retry_adopts_its_in_flight_run_after_the_store_was_wiped(emulator: DbtCloudEmulator) -> None:
    if not task_state.has_task_state_store():
        pytest.skip("this Airflow has no task state store (3.3+)")
    WIPED.clear()
    result = killed_then_adopted(emulator, "wiped", on_retry_callback=wipe_store)
    assert WIPED == [1]  # try 1's entry existed and was wiped before try 2
    assert_adopted(emulator, result)


def test_retry_adopts_past_100_newer_runs_of_the_job(
    emulator: DbtCloudEmulator, client: DbtCloudClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the tries, other task instances start 150 runs of the same job."""
    monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
    job = emulator.world.job_ids["long"]

    def crowd(context: Any) -> None:
        for i in range(150):
            client.trigger_run(job, TriggerRunOptions(cause=f"another DAG's run {i}"))

    result = killed_then_adopted(emulator, "crowded", on_retry_callback=crowd)
    assert len(posts(emulator, "/run/")) == 151
    assert result.try_number("run") == 2
    run_id = int(result.xcom("run", "job_run_id"))
    assert client.list_runs(job_id=job, order_by="id", limit=1)[0].id == run_id  # the oldest: try 1's


def test_killed_try_cancels_its_run_and_the_next_try_starts_a_fresh_one(
    emulator: DbtCloudEmulator, client: DbtCloudClient, store_mode: str
) -> None:
    """A cancelled run is never adopted: try 1 is killed and cancels its run, try 2 triggers anew."""
    with make_dag(f"dbt_cloud_adopt_cancelled_{store_mode}", retries=1) as dag:
        DbtCloudRunJobOperator(
            task_id="run",
            job_id=emulator.world.job_ids["long"],
            check_interval=0.1,
            execution_timeout=timedelta(seconds=3),
        )
    result = run_dag(dag)
    assert result.try_number("run") == 2
    cancels = posts(emulator, "/cancel/")
    assert cancels  # try 1's kill cancelled its run
    assert len(posts(emulator, "/run/")) == 2  # try 2 did not adopt the cancelled run
    runs = client.list_runs(job_id=emulator.world.job_ids["long"], order_by="id")
    assert runs[0].status is RunStatus.CANCELLED
    assert f"/runs/{runs[0].id}/cancel/" in cancels[0].path
    marks = [RunMark.parse(r.trigger_cause) for r in runs]
    assert [m.try_number for m in marks if m] == [1, 2]


def test_retry_from_failure_follows_its_retries_without_the_store(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 2 retries try 1's failed run; try 3 retries *that* retry (it carries no cause of ours)."""
    monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
    with make_dag("dbt_cloud_adopt_retry_chain", retries=2) as dag:
        DbtCloudRunJobOperator(
            task_id="run", job_id=emulator.world.job_ids["fail"], check_interval=0.1, retry_from_failure=True
        )
    result = run_dag(dag)
    assert result.try_number("run") == 3
    assert len(posts(emulator, "/run/")) == 1
    retried = [int(r.path.rstrip("/").split("/")[-2]) for r in posts(emulator, "/retry/")]
    assert len(retried) == 2
    assert retried[0] < retried[1]  # try 3 retried the newest run of the chain, not try 1's again
    assert len(result.errors("run")) == 3


def test_long_trigger_reason_is_cut_to_255_and_the_retry_still_adopts(
    emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
    result = killed_then_adopted(emulator, "long_reason", trigger_reason="Backfill of the orders mart " * 20)
    assert_adopted(emulator, result)
    (triggered,) = posts(emulator, "/run/")
    cause = triggered.body["cause"]
    assert len(cause) <= MAX_CAUSE_LENGTH
    assert cause.startswith("Backfill of the orders mart")
    mark = RunMark.parse(cause)
    assert mark is not None
    assert mark.try_number == 1
