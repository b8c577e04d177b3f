"""Artifact, list and cancel operators against the emulator (their ``execute`` needs no task context)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from support.cloud_operators import posts, wait_terminal

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.operators.dbt_cloud import (
    DbtCloudCancelRunOperator,
    DbtCloudGetJobRunArtifactOperator,
    DbtCloudGetRunArtifactOperator,
    DbtCloudListJobRunsOperator,
    DbtCloudListJobsOperator,
    DbtCloudListRunsOperator,
    DbtCloudRunJobOperator,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

NO_CONTEXT: Any = {}


def finished_run(client: DbtCloudClient, emulator: DbtCloudEmulator, job: str = "success") -> int:
    run = client.trigger_run(emulator.world.job_ids[job], TriggerRunOptions(cause="operator test"))
    return wait_terminal(client, run.id).id


def test_artifact_is_written_to_the_official_default_file_name(
    emulator: DbtCloudEmulator, client: DbtCloudClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = finished_run(client, emulator)
    monkeypatch.chdir(tmp_path)
    op = DbtCloudGetRunArtifactOperator(task_id="a", run_id=str(run_id), path="run_results.json")
    written = Path(op.execute(NO_CONTEXT))
    assert written.name == f"{run_id}_run_results.json"
    assert json.loads((tmp_path / written).read_text())["results"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_artifact_files_honour_the_umask(
    emulator: DbtCloudEmulator, client: DbtCloudClient, tmp_path: Path, umask: int
) -> None:
    """Written as any other file the worker writes: 0666 minus the umask, not mkstemp's 0600."""
    run_id = finished_run(client, emulator)
    op = DbtCloudGetRunArtifactOperator(
        task_id="a", run_id=run_id, path=["manifest.json", "run_results.json"], output_dir=str(tmp_path)
    )
    previous = os.umask(umask)
    try:
        files = op.execute(NO_CONTEXT)
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE(Path(f).stat().st_mode) for name, f in files.items()}
    assert modes == {name: 0o666 & ~umask for name in files}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_several_artifacts_go_to_output_dir(
    emulator: DbtCloudEmulator, client: DbtCloudClient, tmp_path: Path
) -> None:
    run_id = finished_run(client, emulator)
    op = DbtCloudGetRunArtifactOperator(
        task_id="a", run_id=run_id, path=["manifest.json", "run_results.json"], output_dir=str(tmp_path)
    )
    files = op.execute(NO_CONTEXT)
    assert set(files) == {"manifest.json", "run_results.json"}
    assert all(Path(f).parent == tmp_path and Path(f).stat().st_size > 0 for f in files.values())


def test_artifact_returned_as_json(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    run_id = finished_run(client, emulator)
    op = DbtCloudGetRunArtifactOperator(task_id="a", run_id=run_id, path="run_results.json", return_json=True)
    doc = op.execute(NO_CONTEXT)
    assert doc["metadata"]["dbt_schema_version"].endswith("run-results/v6.json")


def test_artifact_operator_rejects_bad_paths_clearly() -> None:
    op = DbtCloudGetRunArtifactOperator(
        task_id="a", run_id=1, path=["a.json", "b.json"], output_file_name="x"
    )
    with pytest.raises(ValueError, match="use output_dir for several paths"):
        op.execute(NO_CONTEXT)
    with pytest.raises(ValueError, match="path must be an artifact path"):
        DbtCloudGetRunArtifactOperator(task_id="b", run_id=1, path=[]).execute(NO_CONTEXT)


def test_list_jobs_returns_ids_in_the_requested_order(emulator: DbtCloudEmulator) -> None:
    ids = DbtCloudListJobsOperator(task_id="l", order_by="-id").execute(NO_CONTEXT)
    assert ids == sorted(emulator.world.job_ids.values(), reverse=True)
    with pytest.raises(ValueError, match="order_by must be one of"):
        DbtCloudListJobsOperator(task_id="bad", order_by="colour")


def test_list_runs_filters_by_job_and_status(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    ok = finished_run(client, emulator, "success")
    failed = finished_run(client, emulator, "fail")
    runs = DbtCloudListRunsOperator(task_id="l").execute(NO_CONTEXT)
    assert [r["id"] for r in runs] == [failed, ok]
    assert json.loads(json.dumps(runs)) == runs  # JSON primitives only: fit for XCom
    errors = DbtCloudListRunsOperator(task_id="l", status_filter=20).execute(NO_CONTEXT)
    assert [r["id"] for r in errors] == [failed]
    latest = DbtCloudListJobRunsOperator(
        task_id="l", job_id=emulator.world.job_ids["success"], latest_only=True
    ).execute(NO_CONTEXT)
    assert latest["id"] == ok
    assert latest["status_humanized"] == "success"


def test_cancel_run_waits_until_cancelled(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    run = client.trigger_run(emulator.world.job_ids["long"], TriggerRunOptions(cause="to cancel"))
    status = DbtCloudCancelRunOperator(task_id="c", run_id=run.id, check_interval=0.05).execute(NO_CONTEXT)
    assert status == "cancelled"
    assert len(posts(emulator, "/cancel/")) == 1


def test_cancel_run_leaves_a_finished_run_alone(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    run_id = finished_run(client, emulator)
    assert DbtCloudCancelRunOperator(task_id="c", run_id=run_id).execute(NO_CONTEXT) == "success"
    assert posts(emulator, "/cancel/") == []


def test_official_operator_names_are_the_same_classes() -> None:
    assert DbtCloudGetJobRunArtifactOperator is DbtCloudGetRunArtifactOperator
    assert DbtCloudListJobRunsOperator is DbtCloudListRunsOperator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give job_id, or all of project_name, environment_name and job_name"),
        ({"project_name": "p", "job_name": "j"}, "give job_id, or all of"),
        ({"job_id": 1, "timeout": 0}, "timeout must be a positive number"),
        ({"job_id": 1, "check_interval": -1}, "check_interval must be a positive number"),
    ],
)
def test_run_job_operator_rejects_bad_arguments_saying_how_to_fix_them(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DbtCloudRunJobOperator(task_id="bad", **kwargs)


def test_non_numeric_job_id_is_a_clear_error(emulator: DbtCloudEmulator) -> None:
    op = DbtCloudRunJobOperator(task_id="bad", job_id="{{ not rendered }}")
    with pytest.raises(ValueError, match="job_id must be a number"):
        op._resolve_job_id(None)  # type: ignore[arg-type]
