"""The shared PostgreSQL deployment works the way users and operators rely on.

These tests prove the harness itself (and the building blocks the provider's scenarios use):
every component is up and ours, several tasks run at once, a deferred task survives a triggerer
crash and a paused triggerer (with XComs and logs read back through the API), and a task
process can be killed by the pid the API reports.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from support.airflow_api import AirflowApi
from support.airflow_deployment import COMPONENTS, AirflowDeployment

pytestmark = pytest.mark.e2e


def test_all_components_healthy_on_postgres(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi
) -> None:
    assert airflow_deployment.backend == "postgresql"
    assert all(airflow_deployment.component(name).alive() for name in COMPONENTS)
    health = airflow.health()
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }


def test_tasks_run_in_parallel(airflow: AirflowApi, tmp_path: Path) -> None:
    airflow.wait_for_dag("e2e_parallel")
    run_id = airflow.trigger_dag_run("e2e_parallel", conf={"barrier_dir": str(tmp_path), "timeout": 120})
    run = airflow.wait_for_dag_run("e2e_parallel", run_id, timeout=240)
    assert run["state"] == "success", airflow.describe_run("e2e_parallel", run_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["left", "right"]


def test_deferred_task_survives_triggerer_crash_and_pause(
    airflow_deployment: AirflowDeployment, airflow: AirflowApi, tmp_path: Path
) -> None:
    """SIGKILL the triggerer, restart it; then SIGSTOP it past its health threshold and resume."""
    airflow.wait_for_dag("e2e_smoke")
    release = tmp_path / "release"
    run_id = airflow.trigger_dag_run("e2e_smoke", conf={"release_file": str(release)})
    airflow.wait_for_task_state("e2e_smoke", run_id, "wait_in_triggerer", {"deferred"}, timeout=180)
    # Deferred is not yet "in the triggerer": crash it only once it runs the trigger.
    airflow.wait_for(
        "the triggerer to pick the trigger up",
        lambda: (
            airflow.task_instance("e2e_smoke", run_id, "wait_in_triggerer").get("triggerer_job") or {}
        ).get("id"),
        timeout=120,
    )

    old_pid = airflow_deployment.component("triggerer").pid
    restarted = airflow_deployment.restart_component("triggerer", sig=signal.SIGKILL)
    assert restarted.pid != old_pid

    triggerer = airflow_deployment.component("triggerer")
    triggerer.pause()
    try:
        airflow.wait_for(
            "the paused triggerer to be reported unhealthy",
            lambda: True if airflow.health()["triggerer"]["status"] == "unhealthy" else None,
            timeout=120,
        )
    finally:
        triggerer.resume()
    airflow_deployment.wait_healthy(components=["triggerer"], timeout=120)
    assert airflow.task_instance("e2e_smoke", run_id, "wait_in_triggerer")["state"] == "deferred"

    release.touch()
    run = airflow.wait_for_dag_run("e2e_smoke", run_id, timeout=240)
    assert run["state"] == "success", airflow.describe_run("e2e_smoke", run_id)
    ti = airflow.task_instance("e2e_smoke", run_id, "wait_in_triggerer")
    assert ti["try_number"] == 1  # resumed, not retried
    # State, XCom and logs through the API, on PostgreSQL (the SQLite smoke run checks the same).
    assert airflow.xcom("e2e_smoke", run_id, "say_hello")["greeting"] == "hello"
    resumed = airflow.xcom("e2e_smoke", run_id, "wait_in_triggerer")
    assert resumed["resumed_at"] > resumed["deferred_at"]
    log = airflow.task_log_text("e2e_smoke", run_id, "wait_in_triggerer")
    assert f"deferring until {release} exists" in log
    assert "resumed after the trigger fired" in log


def test_killed_task_process_is_retried(airflow_deployment: AirflowDeployment, airflow: AirflowApi) -> None:
    airflow.wait_for_dag("e2e_sleeper")
    run_id = airflow.trigger_dag_run("e2e_sleeper", conf={"seconds": 600})
    ti = airflow.wait_for_task_state("e2e_sleeper", run_id, "nap", {"running"}, timeout=180)
    pid = airflow.wait_for(
        "the task's pid in the API",
        lambda: airflow.task_instance("e2e_sleeper", run_id, "nap")["pid"],
        timeout=60,
    )
    assert ti["try_number"] == 1
    airflow_deployment.kill_task_process(int(pid), signal.SIGKILL)

    run = airflow.wait_for_dag_run("e2e_sleeper", run_id, timeout=240)
    assert run["state"] == "success", airflow.describe_run("e2e_sleeper", run_id)
    assert airflow.xcom("e2e_sleeper", run_id, "nap") == 2


def test_kill_task_process_refuses_foreign_pids(airflow_deployment: AirflowDeployment) -> None:
    import os

    with pytest.raises(RuntimeError, match="not a process of"):
        airflow_deployment.kill_task_process(os.getpid())
