"""Scenarios 2-7: dbt Cloud runs driven by a real Airflow deployment against the emulator.

Each scenario triggers its own DAG run (``tests/e2e/dags/e2e_cloud_scenarios.py``) with its own
job, holds the emulator's run in flight at real-time speed for as long as it needs to observe
the task (deferred, killed, moved between triggerers, faulted), then speeds the emulator up so
the run ends. Verdicts come from the emulator's request log (runs triggered, retried, cancelled)
and from Airflow's REST API (states, tries, XComs, links, logs), never from the metadata DB.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from support.airflow_api import AirflowApi, AirflowApiError
from support.airflow_deployment import AirflowDeployment
from support.e2e_cloud import (
    KILL_ACTIONS,
    KILL_REPEAT,
    cancel_calls,
    create_connection,
    deferred_and_watched,
    finish_runs,
    kill_deferred_task,
    posts,
    run_id_of,
    run_polls,
    summarize_requests,
    trigger_calls,
    triggerer_job_id,
    wait_until,
)

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = pytest.mark.e2e

#: The emulator default world's jobs: errors at its `dbt build` step; runs for 10 minutes.
FAIL, LONG = 40002, 40003


@pytest.fixture(scope="module")
def cloud_connection(airflow_deployment: AirflowDeployment, e2e_emulator: DbtCloudEmulator) -> Iterator[None]:
    """The scenarios' connection to the session emulator, created once through the REST API."""
    api = airflow_deployment.api()
    create_connection(api, e2e_emulator)
    yield
    api.delete_connection("dbt_cloud_e2e_scenarios")


@pytest.fixture
def cloud(cloud_connection: None, emulator: DbtCloudEmulator) -> DbtCloudEmulator:
    """The emulator, reset, at real-time speed: a ``long`` run stays in flight for 10 minutes."""
    return emulator


def _start(api: AirflowApi, dag_id: str, **conf: object) -> str:
    api.wait_for_dag(dag_id)
    return api.trigger_dag_run(dag_id, conf=conf)


# --- scenario 2 ------------------------------------------------------------------------------------


def test_deferrable_operator_and_sensor(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id = "e2e_cloud_operator_and_sensor"
    run_id = _start(airflow, dag_id, job_id=LONG)
    for task_id in ("run_job", "wait_for_run"):
        airflow.wait_for_task_state(dag_id, run_id, task_id, {"deferred"}, timeout=180)
    job_run = run_id_of(airflow, dag_id, run_id)
    watched_run = run_id_of(airflow, dag_id, run_id, "start_job")

    # The link works while the task waits in the triggerer, and opens that task's run.
    url = airflow.xcom(dag_id, run_id, "run_job", key="job_run_url")
    assert url.rstrip("/").endswith(f"/runs/{job_run}")
    assert airflow.extra_links(dag_id, run_id, "run_job") == {"dbt Cloud run": url}

    finish_runs(airflow, cloud, dag_id, run_id, deployment=airflow_deployment)
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(dag_id, run_id)}
    assert {t: (ti["state"], ti["try_number"]) for t, ti in tis.items()} == {
        "run_job": ("success", 1),
        "start_job": ("success", 1),
        "wait_for_run": ("success", 1),
    }

    # Exactly one trigger call per operator task, each naming its task; nothing cancelled.
    causes = sorted(r.body["cause"] for r in trigger_calls(cloud, run_id))
    assert len(trigger_calls(cloud)) == 2, summarize_requests(cloud)
    assert [c.split(", ")[1] for c in causes] == ["task run_job", "task start_job"]
    assert cancel_calls(cloud) == []

    assert airflow.xcom(dag_id, run_id, "run_job") == job_run
    summary = airflow.xcom(dag_id, run_id, "run_job", key="dbt_cloud_run_summary")
    assert (summary["run_id"], summary["status"], summary["url"]) == (job_run, "success", url)
    assert airflow.xcom(dag_id, run_id, "wait_for_run") == watched_run
    sensor_url = airflow.xcom(dag_id, run_id, "wait_for_run", key="job_run_url")
    assert sensor_url.rstrip("/").endswith(f"/runs/{watched_run}")
    assert airflow.extra_links(dag_id, run_id, "wait_for_run") == {"dbt Cloud run": sensor_url}
    # The trigger watched the runs: the run was polled after the task deferred.
    assert len(run_polls(cloud, job_run)) >= 2

    for task_id in tis:
        log = airflow.task_log_text(dag_id, run_id, task_id)
        assert cloud.token not in log, f"the API token leaked into the log of {task_id}"


# --- scenario 3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", KILL_ACTIONS)
def test_kill_while_deferred_cancels_the_run(
    airflow_deployment: AirflowDeployment, cloud: DbtCloudEmulator, action: str
) -> None:
    """Mark failed, mark success, clear: each cancels the run; a clear's new try starts one fresh run.

    The same scenario runs on Airflow's defaults in test_kill_on_defaults.py.
    """
    for _ in range(KILL_REPEAT):
        kill_deferred_task(airflow_deployment, cloud, action)


# --- scenario 4 ------------------------------------------------------------------------------------


def test_triggerer_restart_and_reassignment_keep_the_run(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id = "e2e_cloud_deferred_job"
    run_id = _start(airflow, dag_id, job_id=LONG)
    job_run = deferred_and_watched(airflow, cloud, dag_id, run_id)

    # A crashed triggerer, restarted, then one stopped gracefully (a deploy): each time the new one
    # picks the trigger up and watches on, and stopping never cancels the run (cleanup, not on_kill).
    for sig in (signal.SIGKILL, signal.SIGTERM):
        airflow_deployment.restart_component("triggerer", sig=sig)
        polls = len(run_polls(cloud, job_run))
        wait_until(
            f"the triggerer restarted after {sig.name} to poll the run again",
            lambda polls=polls: len(run_polls(cloud, job_run)) > polls + 1,
            timeout=120,
            describe=lambda: summarize_requests(cloud) + "\n" + airflow.describe_run(dag_id, run_id),
        )
        assert airflow.task_instance(dag_id, run_id, "run_job")["state"] == "deferred"
        assert cancel_calls(cloud) == [], summarize_requests(cloud)

    # A triggerer frozen past the health threshold: a second one takes its trigger over; then
    # the frozen one wakes up, finds the trigger gone and (Airflow 3.3, apache/airflow#73454)
    # calls its on_kill while the task is still deferred elsewhere.
    first = airflow_deployment.component("triggerer")
    owner = triggerer_job_id(airflow.task_instance(dag_id, run_id, "run_job"))
    second = airflow_deployment.start_component("triggerer", alias="triggerer2")
    try:
        airflow_deployment.wait_healthy(components=["triggerer2"], timeout=120)
        first.pause()
        try:
            new_owner = wait_until(
                "the trigger to be reassigned to the second triggerer",
                lambda: _reassigned(airflow, dag_id, run_id, owner),
                timeout=180,
                describe=lambda: str(airflow.task_instance(dag_id, run_id, "run_job").get("triggerer_job")),
            )
        finally:
            first.resume()
        assert new_owner != owner
        airflow_deployment.wait_healthy(components=["triggerer"], timeout=120)
        # The woken triggerer drops the trigger and (Airflow 3.3) calls its on_kill: the guard
        # sees the task still deferred in the same try. Read it now, while the trigger is on the
        # second triggerer: should the trigger later move back to the first one (the second's
        # heartbeat lapses while its supervisor builds the in-process execution API on a loaded
        # machine), Airflow rewrites that triggerer's log file for the trigger.
        guard = f"dbt Cloud run {job_run}: task is still deferred (trigger reassigned); not cancelling"
        wait_until(
            "the woken triggerer's on_kill to leave the run alone",
            lambda: guard in airflow.task_log_text(dag_id, run_id, "run_job"),
            timeout=120,
            describe=lambda: airflow.task_log_text(dag_id, run_id, "run_job")[-3000:],
        )
        assert cancel_calls(cloud) == [], summarize_requests(cloud)
        assert airflow.task_instance(dag_id, run_id, "run_job")["state"] == "deferred"

        finish_runs(airflow, cloud, dag_id, run_id, deployment=airflow_deployment)
    finally:
        second.stop()
        airflow_deployment.components.pop("triggerer2", None)

    ti = airflow.task_instance(dag_id, run_id, "run_job")
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    assert cancel_calls(cloud) == []
    assert len(trigger_calls(cloud)) == 1
    assert airflow.xcom(dag_id, run_id, "run_job") == job_run


def _reassigned(api: AirflowApi, dag_id: str, run_id: str, owner: int | None) -> int | None:
    job = triggerer_job_id(api.task_instance(dag_id, run_id, "run_job"))
    return job if job is not None and job != owner else None


# --- scenario 5 ------------------------------------------------------------------------------------


def test_api_faults_while_deferred_are_not_failures(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id = "e2e_cloud_deferred_job"
    run_id = _start(airflow, dag_id, job_id=LONG)
    job_run = deferred_and_watched(airflow, cloud, dag_id, run_id)

    path = f"/api/v2/accounts/{cloud.account_id}/runs/{job_run}/"
    cloud.inject_fault(kind="status", status=429, retry_after=1, path=path, method="GET", count=2)
    cloud.inject_fault(kind="status", status=503, path=path, method="GET", count=8)
    cloud.inject_fault(kind="reset", path=path, method="GET", count=3)
    wanted = {429: 2, 503: 8, 0: 3}

    def faults_served() -> bool:
        statuses = [r.status for r in run_polls(cloud, job_run)]
        return all(statuses.count(status) >= n for status, n in wanted.items())

    wait_until(
        "the trigger to meet every injected fault",
        faults_served,
        timeout=120,
        describe=lambda: summarize_requests(cloud),
    )
    assert airflow.task_instance(dag_id, run_id, "run_job")["state"] == "deferred"

    finish_runs(airflow, cloud, dag_id, run_id, deployment=airflow_deployment)
    ti = airflow.task_instance(dag_id, run_id, "run_job")
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    assert len(trigger_calls(cloud)) == 1
    assert cancel_calls(cloud) == []


# --- scenario 6 ------------------------------------------------------------------------------------


def test_retry_adopts_the_run_of_a_killed_worker(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id = "e2e_cloud_worker_dies"
    run_id = _start(airflow, dag_id, job_id=LONG)
    # job_run_id is pushed after the run id is in the task state store: safe to kill from here.
    job_run = airflow.wait_for(
        "the run id in XCom", lambda: _xcom_or_none(airflow, dag_id, run_id), timeout=180
    )
    assert len(trigger_calls(cloud, run_id)) == 1
    pid = airflow.wait_for(
        "the task's pid", lambda: airflow.task_instance(dag_id, run_id, "run_job")["pid"], timeout=60
    )
    airflow_deployment.kill_task_process(int(pid), signal.SIGKILL)

    ti = airflow.wait_for(
        "the second try to run",
        lambda: _try_running(airflow, dag_id, run_id, 2),
        timeout=180,
        describe=lambda: airflow.describe_run(dag_id, run_id),
    )
    polls = len(run_polls(cloud, job_run))
    wait_until(
        "the retry to watch the adopted run",
        lambda: len(run_polls(cloud, job_run)) > polls,
        timeout=120,
        describe=lambda: summarize_requests(cloud),
    )
    assert ti["try_number"] == 2

    finish_runs(airflow, cloud, dag_id, run_id)
    assert len(trigger_calls(cloud)) == 1, summarize_requests(cloud)
    assert posts(cloud, "/retry/") == []
    assert cancel_calls(cloud) == []  # SIGKILL runs no on_kill: the run was left for the retry
    assert airflow.xcom(dag_id, run_id, "run_job") == job_run
    log = airflow.task_log_text(dag_id, run_id, "run_job", try_number=2)
    assert f"adopting dbt Cloud run {job_run}" in log


def test_retry_from_failure_retries_the_failed_run(airflow: AirflowApi, cloud: DbtCloudEmulator) -> None:
    dag_id = "e2e_cloud_worker_dies"
    cloud.set_speed(20)  # the failing job errors in about half a second
    run_id = _start(airflow, dag_id, job_id=FAIL)
    run = airflow.wait_for_dag_run(dag_id, run_id, timeout=240)
    assert run["state"] == "failed"  # the emulator's `fail` job fails its retry too

    ti = airflow.task_instance(dag_id, run_id, "run_job")
    assert (ti["state"], ti["try_number"]) == ("failed", 2)
    triggered = trigger_calls(cloud)
    assert len(triggered) == 1, summarize_requests(cloud)
    retries = posts(cloud, "/retry/")
    assert len(retries) == 1, summarize_requests(cloud)
    failed_run = _run_id_of_first_try(airflow, dag_id, run_id)
    assert retries[0].path.endswith(f"/runs/{failed_run}/retry/")
    assert cancel_calls(cloud) == []
    log = airflow.task_log_text(dag_id, run_id, "run_job", try_number=2)
    assert f"retrying dbt Cloud run {failed_run} from its failed step" in log


def _run_id_of_first_try(api: AirflowApi, dag_id: str, run_id: str) -> int:
    """The run the first try triggered, from its log (XComs of a try are cleared by the next)."""
    log = api.task_log_text(dag_id, run_id, "run_job", try_number=1)
    for line in log.splitlines():
        if "triggered dbt Cloud run" in line:
            return int(line.split("triggered dbt Cloud run ")[1].split()[0])
    raise AssertionError(f"the first try's log names no triggered run:\n{log[-2000:]}")


def _xcom_or_none(api: AirflowApi, dag_id: str, run_id: str) -> int | None:
    try:
        return run_id_of(api, dag_id, run_id)
    except AirflowApiError as exc:
        if exc.status == 404:
            return None
        raise


def _try_running(api: AirflowApi, dag_id: str, run_id: str, try_number: int) -> dict[str, object] | None:
    ti = api.task_instance(dag_id, run_id, "run_job")
    return ti if ti["try_number"] >= try_number and ti["state"] == "running" else None


# --- scenario 7 ------------------------------------------------------------------------------------


def test_fifty_deferred_runs_in_one_triggerer(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id, runs = "e2e_cloud_fan_out", 50
    assert [n for n in airflow_deployment.components if n.startswith("triggerer")] == ["triggerer"]
    run_id = _start(airflow, dag_id, job_id=LONG, runs=runs)

    job_runs: list[int] = []

    def all_watched() -> list[dict[str, object]] | None:
        """All tasks deferred, each trigger running on a triggerer and polling its run.

        "Deferred" alone is not that: the API shows a task deferred as soon as its trigger row
        exists, and a triggerer picks fifty new triggers up over the next sync loops, so reading
        the owners then saw some still unassigned (``None``).
        """
        mapped = [ti for ti in airflow.task_instances(dag_id, run_id) if ti["task_id"] == "run_job"]
        deferred = [ti for ti in mapped if ti["state"] == "deferred" and triggerer_job_id(ti) is not None]
        if len(deferred) < runs:
            return None
        if not job_runs:
            job_runs.extend(
                int(airflow.xcom(dag_id, run_id, "run_job", key="job_run_id", map_index=i))
                for i in range(runs)
            )
        return deferred if all(len(run_polls(cloud, r)) >= 2 for r in job_runs) else None

    deferred = airflow.wait_for(
        f"{runs} mapped tasks deferred, each trigger running and polling",
        all_watched,
        timeout=300,
        describe=lambda: airflow.describe_run(dag_id, run_id)[:2000],
    )
    owners = {triggerer_job_id(ti) for ti in deferred}
    assert len(owners) == 1, owners

    finish_runs(airflow, cloud, dag_id, run_id, deployment=airflow_deployment, timeout=300)
    mapped = [ti for ti in airflow.task_instances(dag_id, run_id) if ti["task_id"] == "run_job"]
    assert sorted((ti["map_index"], ti["state"], ti["try_number"]) for ti in mapped) == [
        (i, "success", 1) for i in range(runs)
    ]
    causes = sorted(r.body["cause"] for r in trigger_calls(cloud, run_id))
    assert len(trigger_calls(cloud)) == runs
    assert sorted(c.split(", ")[1] for c in causes) == sorted(f"task run_job[{i}]" for i in range(runs))
    assert cancel_calls(cloud) == []
