"""DbtCloudRunJobOperator through ``dag.test()`` (real task runner, XComs, task state store, inline
triggerer) against the emulator: blocking, deferrable, fire-and-forget, failures, timeouts, retries.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from support.cloud_dags import DagResult, finish_runs_once_deferred, make_dag, run_dag
from support.cloud_operators import posts, run_gets, wait_status

from airflow_dbt_provider.cloud import DbtCloudClient, RunStatus
from airflow_dbt_provider.cloud.run_start import RunMark, TaskInstanceRef
from airflow_dbt_provider.operators.dbt_cloud import RUN_SUMMARY_KEY, DbtCloudRunJobOperator
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]

FAST = {"check_interval": 0.1}


def run_job(emulator: DbtCloudEmulator, name: str, job: str, **kwargs: Any) -> DagResult:
    with make_dag(f"dbt_cloud_op_{name}", retries=kwargs.pop("retries", 0)) as dag:
        DbtCloudRunJobOperator(task_id="run", job_id=emulator.world.job_ids[job], **{**FAST, **kwargs})
    return run_dag(dag)


def cancel_when_triggered(emulator: DbtCloudEmulator, client: DbtCloudClient) -> threading.Thread:
    """Cancel the first run the task triggers, from outside, as a dbt Cloud user would."""

    def cancel() -> None:
        for _ in range(600):
            triggered = posts(emulator, "/run/")
            if triggered:
                run_id = int(triggered[0].path.rstrip("/").split("/")[-2])
                runs = client.list_runs(limit=1)
                client.cancel_run(runs[0].id if runs else run_id)
                return
            threading.Event().wait(0.05)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_blocking_success_returns_the_run_id_and_pushes_xcoms(emulator: DbtCloudEmulator) -> None:
    result = run_job(emulator, "blocking_success", "success")
    assert result.state("run") == "success"
    (triggered,) = posts(emulator, "/run/")
    run_id = result.xcom("run", "return_value")
    assert isinstance(run_id, int)
    assert result.xcom("run", "job_run_id") == run_id
    url = result.xcom("run", "job_run_url")
    assert url.endswith(f"/deploy/{emulator.account_id}/projects/{emulator.world.project_id}/runs/{run_id}/")
    assert result.xcom("run", "_link_DbtCloudRunLink") == url
    summary = result.xcom("run", RUN_SUMMARY_KEY)
    assert summary["status"] == "success"
    assert summary["failed_steps"] == []
    assert [s["status"] for s in summary["steps"]] == ["success"] * len(summary["steps"])
    max_tries = result.ti("run").max_tries
    token = TaskInstanceRef(result.dag_id, result.run_id, "run", -1, 1, max_tries).token
    assert triggered.body["cause"] == (
        f"Airflow: DAG dbt_cloud_op_blocking_success, task run, run {result.run_id} "
        f"[airflow:{token}:1:{max_tries}]"  # the marker that lets a retry adopt this run
    )
    assert RunMark.parse(triggered.body["cause"]) == RunMark(token, 1, max_tries)


def test_blocking_mode_streams_step_logs_once_each(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_job(emulator, "step_logs", "success", check_interval=0.05)
    assert result.state("run") == "success"
    out = capfd.readouterr().out
    assert "dbt Cloud step 4 'Invoke dbt with `dbt build`': success" in out
    finished = [line for line in out.splitlines() if "Done. PASS=22" in line]
    assert len(finished) == 1  # written when the step changed, never repeated by later polls


def test_blocking_error_fails_with_the_failing_step_and_its_log_tail(emulator: DbtCloudEmulator) -> None:
    result = run_job(emulator, "blocking_error", "fail")
    assert result.state("run") == "failed"
    (error,) = result.errors("run")
    assert "failed" in error
    assert "Invoke dbt with `dbt build`" in error
    assert "assert_order_amount_not_negative" in error  # the failing test, from the log tail
    assert result.xcom("run", RUN_SUMMARY_KEY)["failed_steps"] == ["Invoke dbt with `dbt build`"]


def test_blocking_run_cancelled_in_dbt_cloud_fails_saying_so(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    thread = cancel_when_triggered(emulator, client)
    result = run_job(emulator, "blocking_cancelled", "long")
    thread.join(timeout=30)
    assert result.state("run") == "failed"
    (error,) = result.errors("run")
    assert "cancelled in dbt Cloud" in error


def test_blocking_timeout_cancels_the_run(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    result = run_job(emulator, "blocking_timeout", "long", timeout=1)
    assert result.state("run") == "failed"
    (error,) = result.errors("run")
    assert "did not finish within timeout=1s; cancelled it" in error
    (cancel,) = posts(emulator, "/cancel/")
    run_id = result.xcom("run", "job_run_id")
    assert f"/runs/{run_id}/cancel/" in cancel.path
    wait_status(client, run_id, RunStatus.CANCELLED)


def test_deferrable_success_defers_then_completes(emulator: DbtCloudEmulator) -> None:
    with finish_runs_once_deferred(emulator):
        result = run_job(emulator, "deferrable_success", "success", deferrable=True)
    assert result.state("run") == "success"
    run_id = result.xcom("run", "return_value")
    assert result.deferred_runs("run") == [run_id]
    assert result.xcom("run", RUN_SUMMARY_KEY)["status"] == "success"
    assert len(posts(emulator, "/run/")) == 1


def test_deferrable_error_reports_the_failing_step_on_resume(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with finish_runs_once_deferred(emulator):
        result = run_job(emulator, "deferrable_error", "fail", deferrable=True)
    assert result.state("run") == "failed"
    assert result.deferred_runs("run")
    (error,) = result.errors("run")
    assert "assert_order_amount_not_negative" in error
    out = capfd.readouterr().out
    assert "dbt Cloud step 1 'Clone git repository': success" in out  # the summary, on resume
    assert "dbt Cloud step 4 'Invoke dbt with `dbt build`': error" in out
    assert len([line for line in out.splitlines() if "  | " in line and "Done. PASS=17" in line]) == 1


def test_deferrable_timeout_is_reported_by_the_trigger_and_cancels_the_run(
    emulator: DbtCloudEmulator,
) -> None:
    result = run_job(emulator, "deferrable_timeout", "long", deferrable=True, timeout=1)
    assert result.state("run") == "failed"
    assert result.deferred_runs("run")
    (error,) = result.errors("run")
    assert "did not finish within timeout=1s; cancelled it" in error
    assert len(posts(emulator, "/cancel/")) == 1


def test_fire_and_forget_returns_while_the_run_goes_on(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    result = run_job(emulator, "fire_and_forget", "long", wait_for_termination=False)
    assert result.state("run") == "success"
    run_id = result.xcom("run", "return_value")
    assert not client.get_run(run_id).is_terminal
    assert result.xcom("run", RUN_SUMMARY_KEY) is None
    assert posts(emulator, "/cancel/") == []


def test_job_looked_up_by_project_environment_and_job_name(emulator: DbtCloudEmulator) -> None:
    world = emulator.world
    with make_dag("dbt_cloud_op_by_name") as dag:
        DbtCloudRunJobOperator(
            task_id="run",
            project_name=world.project_name,
            environment_name=world.environment_name,
            job_name=world.job_names["success"],
            **FAST,
        )
    result = run_dag(dag)
    assert result.state("run") == "success"
    (triggered,) = posts(emulator, "/run/")
    assert f"/jobs/{world.job_ids['success']}/run/" in triggered.path


def test_on_kill_in_blocking_mode_cancels_the_run(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    """The task runner calls on_kill when the task is killed (SIGTERM, execution_timeout)."""
    from airflow_dbt_provider.cloud import TriggerRunOptions

    run = client.trigger_run(emulator.world.job_ids["long"], TriggerRunOptions(cause="to kill"))
    op = DbtCloudRunJobOperator(task_id="run", job_id=emulator.world.job_ids["long"])
    op.on_kill()  # nothing started yet: nothing to cancel
    assert posts(emulator, "/cancel/") == []
    op.run_id = run.id
    op.on_kill()
    (cancel,) = posts(emulator, "/cancel/")
    assert f"/runs/{run.id}/cancel/" in cancel.path


def test_on_kill_respects_cancel_on_kill_false(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    from airflow_dbt_provider.cloud import TriggerRunOptions

    run = client.trigger_run(emulator.world.job_ids["long"], TriggerRunOptions(cause="keep"))
    op = DbtCloudRunJobOperator(task_id="run", job_id=emulator.world.job_ids["long"], cancel_on_kill=False)
    op.run_id = run.id
    op.on_kill()
    assert posts(emulator, "/cancel/") == []


# --- retries without duplicates -----------------------------------------------------------------


def test_retry_adopts_the_previous_tries_run_still_in_flight(emulator: DbtCloudEmulator) -> None:
    """Try 1 dies (execution_timeout, no cancel: as if the worker died); try 2 adopts its run."""
    result = run_job(
        emulator,
        "retry_adopt",
        "long",
        retries=1,
        cancel_on_kill=False,
        execution_timeout=timedelta(seconds=3),
    )
    assert result.try_number("run") == 2
    (triggered,) = posts(emulator, "/run/")  # exactly one run for both tries
    assert posts(emulator, "/retry/") == []
    assert triggered.time < result.ti("run").start_date.timestamp()  # try 1 triggered it, try 2 adopted
    run_id = result.xcom("run", "job_run_id")  # pushed by try 2
    assert triggered.path.endswith(f"/jobs/{emulator.world.job_ids['long']}/run/")
    assert run_gets(emulator, run_id)


def test_retry_from_failure_retries_the_failed_run(emulator: DbtCloudEmulator) -> None:
    result = run_job(emulator, "retry_from_failure", "fail", retries=1, retry_from_failure=True)
    assert result.try_number("run") == 2
    assert len(posts(emulator, "/run/")) == 1
    (retry,) = posts(emulator, "/retry/")
    failed_run = int(retry.path.rstrip("/").split("/")[-2])
    assert result.xcom("run", "job_run_id") != failed_run  # try 2 watches the retry's run
    assert len(result.errors("run")) == 2


def test_retry_without_retry_from_failure_triggers_a_fresh_run(emulator: DbtCloudEmulator) -> None:
    result = run_job(emulator, "retry_fresh", "fail", retries=1)
    assert result.try_number("run") == 2
    assert len(posts(emulator, "/run/")) == 2
    assert posts(emulator, "/retry/") == []


def test_user_clear_triggers_a_fresh_run_even_while_the_old_one_is_in_flight(
    emulator: DbtCloudEmulator,
) -> None:
    """A clear is a request for a new run: the stored run of the earlier try is not adopted."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with make_dag("dbt_cloud_op_cleared", retries=2) as dag:
        DbtCloudRunJobOperator(
            task_id="run", job_id=emulator.world.job_ids["long"], wait_for_termination=False, **FAST
        )
    result = run_dag(dag)
    first = result.xcom("run", "job_run_id")
    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=dag.dag_id, run_id=result.run_id, task_id="run")
            .one()
        )
        clear_task_instances([ti], session, dag_run_state=False)  # what "Clear" in the UI does
        ti.try_number += 1  # what the scheduler does when it schedules the cleared task
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=dag.get_task("run"))
    again = DagResult(dag_id=dag.dag_id, run_id=result.run_id, started=result.started)
    second = again.xcom("run", "job_run_id")
    assert len(posts(emulator, "/run/")) == 2
    assert second != first


def test_reuse_existing_run_adopts_an_in_flight_run_of_the_job(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    from airflow_dbt_provider.cloud import TriggerRunOptions

    existing = client.trigger_run(emulator.world.job_ids["long"], TriggerRunOptions(cause="someone else"))
    result = run_job(emulator, "reuse_existing", "long", reuse_existing_run=True, wait_for_termination=False)
    assert result.xcom("run", "return_value") == existing.id
    assert len(posts(emulator, "/run/")) == 1  # only the one this test made


def test_mapped_tasks_link_to_their_own_runs(emulator: DbtCloudEmulator) -> None:
    job = emulator.world.job_ids["long"]
    with make_dag("dbt_cloud_op_mapped") as dag:
        DbtCloudRunJobOperator.partial(task_id="run", wait_for_termination=False).expand(job_id=[job, job])
    result = run_dag(dag)
    links = [result.xcom("run", "_link_DbtCloudRunLink", map_index=i) for i in (0, 1)]
    urls = [result.xcom("run", "job_run_url", map_index=i) for i in (0, 1)]
    assert links == urls
    assert links[0] != links[1]
    assert all(isinstance(u, str) and "/runs/" in u for u in links)


def test_asset_events_per_built_model_through_the_alias(emulator: DbtCloudEmulator) -> None:
    """Downstream DAGs can be scheduled on dbt models built in dbt Cloud."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    result = run_job(emulator, "assets", "success", asset_alias="dbt_cloud_models")
    assert result.state("run") == "success"
    run_id = result.xcom("run", "return_value")
    with create_session() as session:
        events = (
            session.query(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_dag_id == result.dag_id, AssetEvent.source_run_id == result.run_id)
            .all()
        )
    by_node = {extra["unique_id"]: uri for uri, extra in events}
    assert all(extra["dbt_cloud_run_id"] == run_id for _, extra in events)
    assert "model.jaffle_shop.customers" in by_node
    assert by_node["model.jaffle_shop.customers"].startswith("dbt://duckdb/")
    assert by_node["model.jaffle_shop.customers"].endswith("/customers")
    assert not any(node.startswith("test.") for node in by_node)


def test_token_never_reaches_xcoms_or_errors(emulator: DbtCloudEmulator) -> None:
    result = run_job(emulator, "no_secret", "fail")
    dump = repr(result.all_xcoms()) + repr(result.all_errors())
    assert emulator.token not in dump
