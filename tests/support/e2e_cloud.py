"""Helpers for the dbt Cloud end-to-end scenarios: the deployment's connection, request-log queries.

The scenarios judge the provider by two public records only: what the dbt Cloud emulator was
asked (its request log: which runs were triggered, retried, cancelled) and what Airflow reports
through its REST API. These helpers read both and wait on them patiently, with failure messages
that quote what was seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil

from airflow_dbt_provider.cloud import RunStatus
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator, RecordedRequest
from support.airflow_api import AirflowApi
from support.airflow_deployment import AirflowDeployment
from support.celery_deployment import CeleryDeployment

#: The connection the scenario DAGs use (``tests/e2e/dags/e2e_cloud_scenarios.py``).
CONN_ID = "dbt_cloud_e2e_scenarios"
#: Emulated seconds per real second once a scenario lets its runs finish (10 min in < 0.1 s).
FINISH_SPEED = 10_000.0


def create_connection(api: AirflowApi, emulator: DbtCloudEmulator) -> None:
    """(Re)create the scenarios' connection through the REST API, as a user would in the UI.

    The deployment trusts the emulator's self-signed CA through the ``ca_bundle`` extra only.
    Client retries are quick so fault scenarios take seconds, not the production backoff.
    """
    api.delete_connection(CONN_ID)
    extra = {
        "ca_bundle": str(emulator.ca_cert_path),
        "timeout": 10,
        "retry_max_attempts": 3,
        "retry_backoff_base": 0.2,
        "retry_backoff_max": 1.0,
    }
    api.create_connection(
        {
            "connection_id": CONN_ID,
            "conn_type": "dbt_cloud_api",
            "host": emulator.base_url,
            "login": str(emulator.account_id),
            "password": emulator.token,
            "extra": json.dumps(extra),
        }
    )


def posts(emulator: DbtCloudEmulator, suffix: str) -> list[RecordedRequest]:
    """POSTs whose path ends with ``suffix`` (``/run/``, ``/retry/``, ``/cancel/``)."""
    return [r for r in emulator.requests() if r.method == "POST" and r.path.endswith(suffix)]


def trigger_calls(emulator: DbtCloudEmulator, dag_run_id: str | None = None) -> list[RecordedRequest]:
    """``POST jobs/{id}/run/`` calls, optionally only those whose cause names ``dag_run_id``."""
    calls = posts(emulator, "/run/")
    if dag_run_id is None:
        return calls
    return [r for r in calls if isinstance(r.body, dict) and dag_run_id in str(r.body.get("cause", ""))]


def cancel_calls(emulator: DbtCloudEmulator, run_id: int | None = None) -> list[RecordedRequest]:
    calls = posts(emulator, "/cancel/")
    return calls if run_id is None else [r for r in calls if r.path.endswith(f"/runs/{run_id}/cancel/")]


def run_polls(emulator: DbtCloudEmulator, run_id: int) -> list[RecordedRequest]:
    """Status reads of one run (``GET runs/{id}/``), faulted ones included (status 0 = reset)."""
    return [r for r in emulator.requests() if r.method == "GET" and r.path.endswith(f"/runs/{run_id}/")]


def summarize_requests(emulator: DbtCloudEmulator, last: int = 25) -> str:
    """The tail of the request log as ``METHOD path -> status`` lines, for failure messages."""
    return "\n".join(f"{r.method} {r.path} -> {r.status}" for r in emulator.requests()[-last:])


def wait_until(what: str, probe: Callable[[], Any], *, timeout: float, describe: Callable[[], str]) -> Any:
    """Poll ``probe`` (every 0.25 s) until it returns something truthy; fail quoting ``describe()``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}; last seen:\n{describe()}")
        time.sleep(0.25)


def run_status(emulator: DbtCloudEmulator, run_id: int) -> int:
    """The run's status code as the emulator's API reports it (1/2/3 in flight, 10/20/30 done)."""
    response = httpx.get(
        f"{emulator.base_url}/api/v2/accounts/{emulator.account_id}/runs/{run_id}/",
        headers={"Authorization": f"Token {emulator.token}"},
        verify=str(emulator.ca_cert_path),
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["data"]["status"])


def triggerer_job_id(ti: dict[str, Any]) -> int | None:
    """The id of the triggerer job running the task instance's trigger (``None`` when unassigned)."""
    job = ti.get("triggerer_job")
    return int(job["id"]) if isinstance(job, dict) and job.get("id") is not None else None


def busy_workers(deployment: AirflowDeployment) -> list[str]:
    """Titles of the LocalExecutor workers still running a workload (idle ones end in ``<idle>``).

    The LocalExecutor names each worker process after its workload while it runs it and resets
    the title to ``... <idle>`` only after it has queued the result for the scheduler. On a
    :class:`CeleryDeployment`, the Celery tasks its workers run or hold (Celery's ``inspect``).
    """
    if isinstance(deployment, CeleryDeployment):
        return deployment.busy_workers()
    titles = []
    for proc in deployment.component("scheduler").descendants():
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline()).strip()
            if title.startswith("airflow worker -- LocalExecutor") and not title.endswith("<idle>"):
                titles.append(title)
    return titles


def task_processes(ti_id: str) -> list[str]:
    """Titles of this machine's processes running task instance ``ti_id``: the Task SDK titles a
    task's process ``airflow worker -- <task instance id>`` (empty once Airflow has killed it). All
    processes, not the scheduler's descendants: that walk did not show the task process here."""
    titles = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline()).strip()
            if ti_id in title:
                titles.append(title)
    return titles


def wait_for_idle_workers(deployment: AirflowDeployment, *, timeout: float = 180, settle: float = 5) -> None:
    """Wait until every LocalExecutor worker has reported its workload, plus ``settle`` seconds.

    Why: a task that deferred is ``deferred`` in the API before its worker has reported the
    workload to the scheduler. If the trigger fires and the task resumes first, Airflow 3.3.2's
    scheduler takes the late report of the deferring workload (same try number) as "state
    changed externally" and fails the resumed task (apache/airflow#72716, open; seen here with
    50 mapped tasks on two loaded cores). Scenarios let runs finish only after this.
    """
    wait_until(
        "the LocalExecutor workers to go idle",
        lambda: not busy_workers(deployment),
        timeout=timeout,
        describe=lambda: "\n".join(busy_workers(deployment)),
    )
    time.sleep(settle)


def run_id_of(api: AirflowApi, dag_id: str, run_id: str, task_id: str = "run_job") -> int:
    """The dbt Cloud run id the task pushed (``job_run_id``) as soon as its run existed."""
    return int(api.xcom(dag_id, run_id, task_id, key="job_run_id"))


def deferred_and_watched(
    api: AirflowApi, emulator: DbtCloudEmulator, dag_id: str, run_id: str, *, min_try: int = 1
) -> int:
    """Wait until the task (try ``min_try`` or later) is deferred and the triggerer polls its run.

    Deferred is not enough: a loaded triggerer picks a new trigger up seconds later, and a
    scenario that acts before then tests nothing of the trigger. Returns the dbt Cloud run id.
    """

    def deferred() -> bool:
        ti = api.task_instance(dag_id, run_id, "run_job")
        return ti["state"] == "deferred" and ti["try_number"] >= min_try

    wait_until(
        f"task run_job (try >= {min_try}) to defer",
        deferred,
        timeout=240,
        describe=lambda: api.describe_run(dag_id, run_id),
    )
    job_run = run_id_of(api, dag_id, run_id)
    wait_until(
        f"the triggerer to poll dbt Cloud run {job_run}",
        lambda: len(run_polls(emulator, job_run)) >= 2,  # the task's own check, then the trigger's
        timeout=180,
        describe=lambda: summarize_requests(emulator) + "\n" + api.describe_run(dag_id, run_id),
    )
    return job_run


def finish_runs(
    api: AirflowApi,
    emulator: DbtCloudEmulator,
    dag_id: str,
    run_id: str,
    *,
    deployment: AirflowDeployment | None = None,
    timeout: float = 240,
) -> None:
    """Let every run in flight end now; wait for the DAG run and require its success.

    With ``deployment`` (deferred tasks only), first wait until the workers that ran the
    deferring tries have reported them (see :func:`wait_for_idle_workers`). On failure the
    message carries the log tail of the failed task instances (mapped ones too): the
    deployment's log report only shows the newest task logs.
    """
    if deployment is not None:
        wait_for_idle_workers(deployment)
    emulator.set_speed(FINISH_SPEED)
    state = api.wait_for_dag_run(dag_id, run_id, timeout=timeout)["state"]
    if state == "success":
        return
    report = [f"DAG run {dag_id}/{run_id} ended {state!r}"]
    failed = [ti for ti in api.task_instances(dag_id, run_id) if ti["state"] != "success"]
    for ti in failed[:3]:
        log = api.task_log_text(dag_id, run_id, ti["task_id"], ti["try_number"], map_index=ti["map_index"])
        tail = "\n".join(log.splitlines()[-30:])
        report.append(f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']} (try {ti['try_number']}):")
        report.append(tail)
    report.append("--- emulator requests:\n" + summarize_requests(emulator))
    raise AssertionError("\n".join(report))


#: The user actions that kill a deferred task, as the UI offers them.
KILL_ACTIONS = ("mark_failed", "mark_success", "clear")
#: The emulator default world's ``long`` job: a run that stays in flight for 10 minutes.
LONG_JOB = 40003
CANCELLED = 30
#: How long a kill may take to reach dbt Cloud (the issue's bar; Airflow's on_kill_timeout is 30 s).
CANCEL_WITHIN_S = 30.0
#: How many times in a row each action runs per deployment (``ADP_KILL_REPEAT=5`` for the 5x check).
KILL_REPEAT = int(os.environ.get("ADP_KILL_REPEAT", "1"))


def kill_deferred_task(
    deployment: AirflowDeployment,
    emulator: DbtCloudEmulator,
    action: str,
    *,
    dag_id: str = "e2e_cloud_deferred_job",
) -> float:
    """Kill a deferred run's task with ``action``; check the run is cancelled and what follows.

    ``mark_failed``/``mark_success`` leave the task in that state; ``clear`` starts a new try that
    triggers exactly one fresh run (which nothing cancels) and succeeds with it. Works on the
    emulator's request log filtered by this DAG run and its runs, so calls may repeat without a
    reset. ``dag_id`` names a DAG shaped like ``e2e_cloud_deferred_job`` (one deferrable
    ``run_job`` task, job from the conf). Returns the seconds from the action to the confirmed cancel.
    """
    api = deployment.api()
    api.wait_for_dag(dag_id)
    run_id = api.trigger_dag_run(dag_id, conf={"job_id": LONG_JOB})
    job_run = deferred_and_watched(api, emulator, dag_id, run_id)
    assert cancel_calls(emulator, job_run) == [], summarize_requests(emulator)

    kill(api, dag_id, run_id, action)
    acted = time.monotonic()
    wait_until(
        f"{action} to cancel dbt Cloud run {job_run} within {CANCEL_WITHIN_S:.0f}s",
        lambda: (
            [c for c in cancel_calls(emulator, job_run) if c.status == 200]
            and run_status(emulator, job_run) == CANCELLED
        ),
        timeout=CANCEL_WITHIN_S,
        describe=lambda: summarize_requests(emulator) + "\n" + deployment.component("triggerer").log_tail(30),
    )
    took = time.monotonic() - acted
    assert len(cancel_calls(emulator, job_run)) == 1, summarize_requests(emulator)

    new_run = what_follows_the_kill(deployment, emulator, action, dag_id, run_id, job_run)
    if new_run is not None:
        assert cancel_calls(emulator, new_run) == [], summarize_requests(emulator)
    return took


def kill(api: AirflowApi, dag_id: str, run_id: str, action: str) -> None:
    """Kill the deferred ``run_job`` task as a user does in the UI (one of :data:`KILL_ACTIONS`)."""
    if action == "mark_failed":
        api.set_task_state(dag_id, run_id, "run_job", "failed")
    elif action == "mark_success":
        api.set_task_state(dag_id, run_id, "run_job", "success")
    elif action == "clear":
        api.clear_task_instance(dag_id, run_id, "run_job")
    else:
        raise ValueError(f"unknown kill action {action!r}; one of {KILL_ACTIONS}")


def what_follows_the_kill(
    deployment: AirflowDeployment,
    emulator: DbtCloudEmulator,
    action: str,
    dag_id: str,
    run_id: str,
    job_run: int,
) -> int | None:
    """Check what follows a kill of the task that watched ``job_run``; the clear's new run, if any.

    ``mark_failed``/``mark_success`` leave the task (and its DAG run) in that state, with no other
    run triggered; ``clear`` starts try 2, which triggers exactly one fresh run and succeeds with it.
    """
    api = deployment.api()
    if action != "clear":
        wanted = "failed" if action == "mark_failed" else "success"
        ti = api.task_instance(dag_id, run_id, "run_job")
        assert (ti["state"], ti["try_number"]) == (wanted, 1)
        assert api.wait_for_dag_run(dag_id, run_id, timeout=180)["state"] == wanted
        assert len(trigger_calls(emulator, run_id)) == 1, summarize_requests(emulator)
        return None
    new_run = deferred_and_watched(api, emulator, dag_id, run_id, min_try=2)
    assert new_run != job_run
    assert len(trigger_calls(emulator, run_id)) == 2, summarize_requests(emulator)
    finish_runs(api, emulator, dag_id, run_id, deployment=deployment)
    emulator.set_speed(1.0)
    ti = api.task_instance(dag_id, run_id, "run_job")
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    assert api.xcom(dag_id, run_id, "run_job") == new_run
    return new_run


#: What the operator logs as it defers on Airflow < 3.3 (``compat.warn_no_trigger_on_kill``).
NO_TRIGGER_ON_KILL = "has no trigger on_kill (Airflow 3.3 adds it): killing this task while it is deferred"


def trigger_dropped(deployment: AirflowDeployment, dag_id: str, run_id: str, try_number: int) -> bool:
    """Whether the triggerer has ended the trigger of that try (its ``trigger completed`` line).

    The triggerer names a trigger ``dag/run/task/map_index/try (ID n)`` and logs ``trigger
    completed`` when its coroutine ends: fired, or cancelled because its task left ``deferred``
    (after the trigger's ``cleanup``). The line goes to the try's trigger log
    (``attempt=<try>.log.trigger.<job>.log``) or to the triggerer's own log.
    """
    name = f"{dag_id}/{run_id}/run_job/-1/{try_number} (ID "
    try_logs = deployment.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=run_job"
    files = [deployment.component("triggerer").log_path, *try_logs.glob(f"attempt={try_number}.log*")]
    for path in files:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if "trigger completed" in line and name in line:
                    return True
    return False


def kill_deferred_task_without_trigger_on_kill(
    deployment: AirflowDeployment,
    emulator: DbtCloudEmulator,
    action: str,
    *,
    dag_id: str = "e2e_cloud_deferred_job",
) -> None:
    """Kill a deferred run's task on Airflow < 3.3: the degradation docs/compatibility.md states.

    Without trigger ``on_kill`` nothing tells the trigger why its task left ``deferred``: the
    triggerer just drops it. So the task log says once, as the task defers, that a kill while
    deferred does not cancel the run; after the kill, once the triggerer has dropped the trigger
    (the only place a cancel could come from), the run was not cancelled and is still in flight.
    ``mark_failed``/``mark_success`` leave the task in that state; ``clear`` starts a new try
    that triggers one fresh run (a clear recomputes ``max_tries``, so the old run is not
    adopted) and succeeds with it, while the old run goes on to its own end.
    """
    api = deployment.api()
    api.wait_for_dag(dag_id)
    run_id = api.trigger_dag_run(dag_id, conf={"job_id": LONG_JOB})
    job_run = deferred_and_watched(api, emulator, dag_id, run_id)
    log = api.task_log_text(dag_id, run_id, "run_job", 1)
    assert log.count(NO_TRIGGER_ON_KILL) == 1, log[-3000:]

    kill(api, dag_id, run_id, action)
    wait_until(
        f"the triggerer to drop the trigger of {dag_id}/{run_id} after {action}",
        lambda: trigger_dropped(deployment, dag_id, run_id, 1),
        timeout=120,
        describe=lambda: deployment.component("triggerer").log_tail(30),
    )
    assert cancel_calls(emulator) == [], summarize_requests(emulator)
    assert not RunStatus(run_status(emulator, job_run)).is_terminal, summarize_requests(emulator)

    if what_follows_the_kill(deployment, emulator, action, dag_id, run_id, job_run) is not None:
        assert api.task_log_text(dag_id, run_id, "run_job", 2).count(NO_TRIGGER_ON_KILL) == 1
    assert cancel_calls(emulator) == [], summarize_requests(emulator)
