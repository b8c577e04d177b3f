"""The sync client against the dbt Cloud emulator over real HTTPS, in strict and lenient modes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.dbt_cloud_client import settings_for

from airflow_dbt_provider import __version__
from airflow_dbt_provider.cloud import (
    DbtCloudAuthError,
    DbtCloudClient,
    DbtCloudConfigError,
    DbtCloudLookupError,
    DbtCloudNotFoundError,
    Run,
    RunStatus,
    TriggerRunOptions,
    _core,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

WAIT_SECONDS = 60


def wait_for(client: DbtCloudClient, run: Run) -> Run:
    deadline = time.monotonic() + WAIT_SECONDS
    while not run.is_terminal:
        assert time.monotonic() < deadline, f"run {run.id} still {run.status.name} after {WAIT_SECONDS}s"
        time.sleep(0.2)
        run = client.get_run(run.id)
    return run


def test_account_project_environment_and_job_lookup(
    any_client: DbtCloudClient, any_emulator: DbtCloudEmulator
) -> None:
    world = any_emulator.world
    assert any_client.get_account().id == world.account_id
    assert world.account_id in [a.id for a in any_client.list_accounts()]
    (project,) = any_client.list_projects(world.project_name.upper())  # names match case-insensitively
    assert project.id == world.project_id
    assert [e.id for e in any_client.list_environments(project.id, world.environment_name)] == [
        world.environment_id
    ]
    assert world.environment_id in [e.id for e in any_client.list_environments()]
    job = any_client.find_job(world.project_name, world.environment_name, world.job_names["success"])
    assert job.id == world.job_ids["success"]
    assert any_client.get_job(job.id).name == world.job_names["success"]
    jobs = any_client.list_jobs(project_id=world.project_id, environment_id=world.environment_id)
    assert set(world.job_ids.values()) <= {j.id for j in jobs}
    assert [j.id for j in any_client.list_jobs(name=world.job_names["fail"])] == [world.job_ids["fail"]]


def test_find_job_lists_candidates_when_nothing_matches(
    client: DbtCloudClient, emulator: DbtCloudEmulator
) -> None:
    world = emulator.world
    with pytest.raises(DbtCloudLookupError, match="No job named 'nope'") as excinfo:
        client.find_job(world.project_name, world.environment_name, "nope")
    assert repr(world.job_names["success"]) in str(excinfo.value)
    with pytest.raises(DbtCloudLookupError, match=rf"No project named 'missing'.*{world.project_name}"):
        client.find_job("missing", world.environment_name, "x")


def test_find_job_refuses_an_ambiguous_name(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    world = emulator.world
    definition = client.export_job(world.job_ids["success"])
    twin = client.import_job(definition)
    with pytest.raises(DbtCloudLookupError, match=rf"2 jobs named .*id {twin.id}"):
        client.find_job(world.project_name, world.environment_name, world.job_names["success"])


def test_trigger_sends_every_option_and_the_run_succeeds(
    any_client: DbtCloudClient, any_emulator: DbtCloudEmulator
) -> None:
    options = TriggerRunOptions(
        cause="nightly from Airflow",
        git_branch="main",
        schema_override="dbt_airflow",
        threads_override=2,
        target_name_override="prod",
        generate_docs_override=False,
        timeout_seconds_override=600,
        steps_override=["dbt build"],
    )
    run = any_client.trigger_run(any_emulator.world.job_ids["success"], options)
    assert run.status is RunStatus.QUEUED  # the API answers a trigger with the new, queued run
    assert run.job_id == any_emulator.world.job_ids["success"]
    (sent,) = [r for r in any_emulator.requests() if r.method == "POST" and r.path.endswith("/run/")]
    assert sent.body == options.to_api()
    done = wait_for(any_client, run)
    assert done.status is RunStatus.SUCCESS
    assert done.finished_at is not None
    detailed = any_client.get_run(run.id, include_steps=True)
    assert detailed.trigger_cause == "nightly from Airflow"
    assert detailed.run_steps
    assert all(s.status is RunStatus.SUCCESS for s in detailed.run_steps)
    assert any("dbt build" in (s.name or "") and s.logs for s in detailed.run_steps)
    assert any_client.run_url(done).startswith(any_emulator.base_url + "/deploy/")


def test_artifacts_list_get_and_stream_to_file(
    client: DbtCloudClient, emulator: DbtCloudEmulator, tmp_path: Path
) -> None:
    run = wait_for(client, client.trigger_run(emulator.world.job_ids["success"]))
    names = client.list_artifacts(run.id)
    assert {"manifest.json", "run_results.json"} <= set(names)
    run_results = client.get_artifact_json(run.id, "run_results.json")
    assert run_results["results"]
    raw = client.get_artifact(run.id, "manifest.json")
    path = client.download_artifact(run.id, "manifest.json", tmp_path)
    assert path == tmp_path / "manifest.json"
    assert path.read_bytes() == raw
    assert json.loads(raw)["nodes"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    step = client.get_run(run.id, include_steps=True).run_steps[-1].index
    assert client.get_artifact_json(run.id, "run_results.json", step=step)["results"]
    with pytest.raises(DbtCloudNotFoundError, match=rf"artifact 'nope.json' of run {run.id}"):
        client.get_artifact(run.id, "nope.json")


def test_failed_run_then_retry_and_rerun(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    job_id = emulator.world.job_ids["fail"]
    failed = wait_for(client, client.trigger_run(job_id))
    assert failed.status is RunStatus.ERROR
    steps = client.get_run(failed.id, include_steps=True).run_steps
    assert any(s.status is RunStatus.ERROR for s in steps)
    retried = client.retry_run(failed.id)
    assert retried.id != failed.id
    assert retried.job_id == job_id
    assert [r.path for r in emulator.requests() if r.method == "POST"][-1].endswith(
        f"/runs/{failed.id}/retry/"
    )
    rerun = client.rerun_job(job_id)
    assert rerun.id not in {failed.id, retried.id}
    assert rerun.job_id == job_id


def test_cancel_a_long_run(any_client: DbtCloudClient, any_emulator: DbtCloudEmulator) -> None:
    run = any_client.trigger_run(any_emulator.world.job_ids["long"])
    any_client.cancel_run(run.id)
    assert wait_for(any_client, any_client.get_run(run.id)).status is RunStatus.CANCELLED


def test_list_runs_filters_orders_and_paginates(
    client: DbtCloudClient, emulator: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = emulator.world.job_ids["long"]
    triggered = [client.trigger_run(job_id).id for _ in range(3)]
    monkeypatch.setattr(_core, "MAX_PAGE_SIZE", 2)  # three runs then take two pages
    runs = client.list_runs(job_id=job_id)
    assert [r.id for r in runs] == sorted(triggered, reverse=True)
    pages = [r.query for r in emulator.requests() if r.path.endswith("/runs/") and r.method == "GET"]
    assert [(p["offset"], p["limit"]) for p in pages] == [(["0"], ["2"]), (["2"], ["2"])]
    assert [r.id for r in client.list_runs(job_id=job_id, order_by="id", limit=2)] == sorted(triggered)[:2]
    client.cancel_run(triggered[0])
    wait_for(client, client.get_run(triggered[0]))
    cancelled = client.list_runs(job_id=job_id, status=[RunStatus.CANCELLED, RunStatus.ERROR])
    assert [r.id for r in cancelled] == [triggered[0]]
    assert client.list_runs(job_id=job_id, status=RunStatus.SUCCESS) == []
    with pytest.raises(DbtCloudConfigError, match="order_by"):
        client.list_runs(order_by="name")


def test_job_create_export_import_delete(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    world = emulator.world
    created = client.create_job(
        {
            "name": "Created by test",
            "project_id": world.project_id,
            "environment_id": world.environment_id,
            "execute_steps": ["dbt build -s orders"],
        }
    )
    assert created.name == "Created by test"
    assert created.execute_steps == ("dbt build -s orders",)
    exported = client.export_job(created.id)
    assert "id" not in exported
    assert "created_at" not in exported
    assert exported["execute_steps"] == ["dbt build -s orders"]
    copy = client.import_job(json.loads(json.dumps(exported)), environment_id=world.environment_id)
    assert copy.id != created.id
    assert copy.name == created.name
    client.delete_job(created.id)
    with pytest.raises(DbtCloudNotFoundError, match=f"job {created.id} in account {world.account_id}"):
        client.get_job(created.id)
    with pytest.raises(DbtCloudConfigError, match="execute_steps"):
        client.create_job({"name": "x", "project_id": 1, "environment_id": 2})


def test_errors_fail_fast_and_say_what_to_check(client: DbtCloudClient, emulator: DbtCloudEmulator) -> None:
    with pytest.raises(
        DbtCloudNotFoundError, match=rf"run 999999 in account {emulator.account_id}.*Access URL"
    ):
        client.get_run(999999)
    with (
        DbtCloudClient(settings_for(emulator, token="wrong-token")) as bad,
        pytest.raises(DbtCloudAuthError, match=r"HTTP 401.*API token"),
    ):
        bad.get_account()
    assert len([r for r in emulator.requests() if r.status == 401]) == 1  # no retry on 401
    with pytest.raises(DbtCloudConfigError, match="positive integer"):
        client.get_run(-1)


def test_identifies_itself_and_authenticates_with_a_token_header(client: DbtCloudClient) -> None:
    session_headers = client._session.headers
    assert session_headers["User-Agent"] == f"airflow-dbt-provider/{__version__}"
    assert str(session_headers["Authorization"]).startswith("Token ")
    assert client.get_account()  # the emulator accepted them
