"""The trigger's on_kill guard against real task instance states read through the Task SDK.

A task instance is created by ``dag.test()`` in the suite's metadata DB; its state is then set as a
user action (or a triggerer reassignment) leaves it, and ``on_kill`` asks Airflow's in-process
execution API for it through the same supervisor channel a triggerer gives its triggers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest
import structlog
from support.cloud_dags import DagResult, make_dag, run_dag
from support.cloud_operators import posts

from airflow_dbt_provider.cloud import DbtCloudClient, RunStatus
from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunJobOperator
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

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


def watching(result: DagResult) -> DbtCloudRunTrigger:
    trigger = DbtCloudRunTrigger(run_id=result.xcom("run", "job_run_id"), poll_interval=1)
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
    assert client.get_run(trigger.run_id).status is RunStatus.RUNNING


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
    assert client.get_run(trigger.run_id).status in (RunStatus.CANCELLED, RunStatus.RUNNING)
