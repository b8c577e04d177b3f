"""The trigger's on_kill guard against real task instance states read through the Task SDK.

A task instance is created by ``dag.test()`` in the suite's metadata DB; its state is then set as a
user action (or a triggerer reassignment) leaves it, and ``on_kill`` asks Airflow's in-process
execution API for it through the same supervisor channel a triggerer gives its triggers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import structlog
from support.cloud_dags import DagResult, make_dag, run_dag
from support.cloud_operators import posts

from airflow_dbt_provider.cloud import DbtCloudClient, RunStatus
from airflow_dbt_provider.compat import HAS_TRIGGER_ON_KILL
from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.triggers.dbt_cloud import (
    DEFAULT_ON_KILL_TIMEOUT,
    DEFERRED_TRY_XCOM_KEY,
    DbtCloudRunTrigger,
    on_kill_budget,
)

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]


@pytest.fixture
def task_in_flight(emulator: DbtCloudEmulator) -> DagResult:
    """A task instance that started a long run and left it going (fire-and-forget)."""
    with make_dag("dbt_cloud_on_kill_guard") as dag:
        DbtCloudRunJobOperator(
            task_id="run", job_id=emulator.world.job_ids["long"], wait_for_termination=False
        )
    return run_dag(dag)


@pytest.fixture
def supervisor_comms(task_in_flight: DagResult) -> Iterator[None]:
    """The Task SDK supervisor channel, answering from the metadata DB as a triggerer's would."""
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )

    supervisor = InProcessTestSupervisor(
        id=task_in_flight.ti("run").id,
        pid=os.getpid(),
        process=psutil.Process(),
        process_log=structlog.get_logger(logger_name="task").bind(),
        client=InProcessTestSupervisor._api_client(),
    )
    supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
    with set_supervisor_comms(supervisor.comms):
        yield


def set_state(result: DagResult, state: str | None) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=result.dag_id, run_id=result.run_id, task_id="run")
            .one()
        )
        ti.state = state


def watching(result: DagResult, try_number: int | None = None) -> DbtCloudRunTrigger:
    trigger = DbtCloudRunTrigger(
        run_id=result.xcom("run", "job_run_id"), poll_interval=1, try_number=try_number
    )
    trigger.task_instance = result.ti("run")
    return trigger


@pytest.mark.usefixtures("supervisor_comms")
async def test_no_cancel_while_the_task_is_still_deferred(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    """Airflow 3.3.x calls on_kill on triggers reassigned after missed heartbeats: run must go on."""
    set_state(task_in_flight, "deferred")
    trigger = watching(task_in_flight)
    assert (await trigger.lookup_task_instance_state()).state == "deferred"
    await trigger.on_kill()
    assert posts(emulator, "/cancel/") == []
    # Still in flight (the emulated run may not have left STARTING yet on a loaded machine).
    assert client.get_run(trigger.run_id).status not in RunStatus.TERMINAL


@pytest.mark.usefixtures("supervisor_comms")
@pytest.mark.parametrize(
    "state", ["failed", "success", None], ids=["marked-failed", "marked-success", "cleared"]
)
async def test_cancels_when_a_user_killed_the_deferred_task(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient, state: str | None
) -> None:
    set_state(task_in_flight, state)
    trigger = watching(task_in_flight)
    lookup = await trigger.lookup_task_instance_state()
    assert lookup.known
    assert lookup.state == state
    await trigger.on_kill()
    (cancel,) = posts(emulator, "/cancel/")
    assert f"/runs/{trigger.run_id}/cancel/" in cancel.path
    # on_kill returns once dbt Cloud reports the cancel (or after a warning): it must be cancelled now.
    assert client.get_run(trigger.run_id).status is RunStatus.CANCELLED


# --- the try-number guard: a reassignment keeps the run, a cleared-and-deferred-again try does not --


def set_deferred_try(result: DagResult, try_number: int | None) -> None:
    """The XCom a deferring try pushes (``None``: none, as after a new try cleared the XComs)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(XComModel).filter_by(
            dag_id=result.dag_id, task_id="run", run_id=result.run_id, key=DEFERRED_TRY_XCOM_KEY
        ).delete()
    if try_number is not None:
        XComModel.set(
            DEFERRED_TRY_XCOM_KEY, try_number, dag_id=result.dag_id, task_id="run", run_id=result.run_id
        )


@pytest.mark.usefixtures("supervisor_comms")
async def test_reassigned_trigger_of_the_same_try_leaves_the_run_alone(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    set_state(task_in_flight, "deferred")
    set_deferred_try(task_in_flight, 1)
    trigger = watching(task_in_flight, try_number=1)
    assert not (await trigger.kill_verdict()).cancel
    await trigger.on_kill()
    assert posts(emulator, "/cancel/") == []
    # Still in flight (the emulated run may not have left STARTING yet on a loaded machine).
    assert client.get_run(trigger.run_id).status not in RunStatus.TERMINAL


@pytest.mark.usefixtures("supervisor_comms")
@pytest.mark.parametrize("current", [2, None], ids=["deferred-again-in-try-2", "try-2-pushed-nothing-yet"])
async def test_cleared_task_deferred_again_in_a_new_try_cancels_the_old_run(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient, current: int | None
) -> None:
    """Cleared, then deferred again: "deferred" too, but another try, so the old run is cancelled."""
    set_state(task_in_flight, "deferred")
    set_deferred_try(task_in_flight, current)
    trigger = watching(task_in_flight, try_number=1)
    verdict = await trigger.kill_verdict()
    assert verdict.cancel, verdict
    await trigger.on_kill()
    (cancel,) = posts(emulator, "/cancel/")
    assert f"/runs/{trigger.run_id}/cancel/" in cancel.path
    assert client.get_run(trigger.run_id).status is RunStatus.CANCELLED


# --- the triggerer cancels a killed trigger again and again: the cancel must still land ------------


class SlowSupervisor:
    """The supervisor channel, answering ``delay`` seconds late (SQLite defaults under load)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def asend(self, msg: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await asyncio.to_thread(self.inner.send, msg)

    def send(self, msg: Any) -> Any:
        return self.inner.send(msg)


@pytest.fixture
def slow_supervisor(supervisor_comms: None) -> Iterator[None]:
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    with set_supervisor_comms(SlowSupervisor(task_runner.SUPERVISOR_COMMS, delay=1.5)):
        yield


@pytest.mark.skipif(not HAS_TRIGGER_ON_KILL, reason="the triggerer calls on_kill on Airflow 3.3+")
@pytest.mark.usefixtures("slow_supervisor")
async def test_cancel_lands_although_the_triggerer_cancels_the_trigger_again_and_again(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    """Airflow's own ``TriggerRunner.run_trigger``, re-cancelled as ``cancel_triggers`` does each sync.

    Airflow 3.3.2 swallows the CancelledError that lands in ``wait_for(on_kill(), ...)``; with two
    slow supervisor round trips before the cancel request, an on_kill awaited in place never
    sent it (issue 13). The sync loop is shortened to 0.2 s here; each of its cancels lands in
    on_kill.
    """
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG, TriggerRunner

    set_state(task_in_flight, "failed")
    trigger = watching(task_in_flight, try_number=1)
    runner = TriggerRunner()
    runner.triggers[1] = {"task": None, "name": "dbt-cloud", "events": 0, "is_watcher": False}
    task = asyncio.create_task(runner.run_trigger(1, trigger))
    runner.triggers[1]["task"] = task
    await asyncio.sleep(0.5)  # the trigger is in run(): its first poll delay or its first poll

    started = time.monotonic()
    recancels = 0
    while not task.done():
        task.cancel(_USER_ACTION_CANCEL_MSG)
        recancels += 1
        await asyncio.sleep(0.2)
    assert recancels >= 2  # a second cancel landed in on_kill while it waited on the supervisor
    # The trigger was torn down (cleanup ran) before the cancel was sent: it lands anyway.
    for _ in range(200):
        if client.get_run(trigger.run_id).status is RunStatus.CANCELLED:
            break
        await asyncio.sleep(0.1)
    assert client.get_run(trigger.run_id).status is RunStatus.CANCELLED
    assert time.monotonic() - started < DEFAULT_ON_KILL_TIMEOUT
    assert len(posts(emulator, "/cancel/")) == 1
    assert trigger._client is None


@pytest.mark.usefixtures("supervisor_comms")
async def test_a_lookup_slower_than_its_budget_leaves_the_run_alone_in_time(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state lookup gets a third of ``[triggerer] on_kill_timeout``; it never eats the rest."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    set_state(task_in_flight, "failed")
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "3")
    assert on_kill_budget() == 3
    trigger = watching(task_in_flight, try_number=1)
    with set_supervisor_comms(SlowSupervisor(task_runner.SUPERVISOR_COMMS, delay=30)):
        started = time.monotonic()
        await trigger.on_kill()
    assert time.monotonic() - started < 3
    assert posts(emulator, "/cancel/") == []


def test_try_number_round_trips_and_old_kwargs_still_load() -> None:
    trigger = DbtCloudRunTrigger(run_id=7, try_number=3)
    _classpath, kwargs = trigger.serialize()
    assert DbtCloudRunTrigger(**kwargs).try_number == 3
    old = {k: v for k, v in kwargs.items() if k != "try_number"}  # serialized by 0.1
    assert DbtCloudRunTrigger(**old).try_number is None


@pytest.mark.usefixtures("supervisor_comms")
async def test_a_run_that_already_ended_is_not_cancelled(
    task_in_flight: DagResult, emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    """Reassigned, fired on the other triggerer, task resumed ("running"): nothing left to cancel."""
    set_state(task_in_flight, "running")
    trigger = watching(task_in_flight, try_number=1)
    emulator.set_speed(100_000)
    for _ in range(100):
        if client.get_run(trigger.run_id).is_terminal:
            break
        await asyncio.sleep(0.05)
    await trigger.on_kill()
    assert posts(emulator, "/cancel/") == []
    assert client.get_run(trigger.run_id).status is RunStatus.SUCCESS
