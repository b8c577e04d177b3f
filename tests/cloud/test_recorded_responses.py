"""Every real dbt Cloud response recorded in ../shared parses into our models.

The recordings predate fields the current spec requires and carry ``null`` where the spec declares
plain types, string ids and epoch timestamps: exactly what lenient parsing exists for.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_dbt_provider.cloud import Account, Job, Run, RunStatus
from airflow_dbt_provider.cloud.models import Artifact

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "dbt-cloud-recorded-responses"

pytestmark = pytest.mark.skipif(not RECORDED.is_dir(), reason=f"recorded responses not found at {RECORDED}")


def _data(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())["data"]


def test_every_recorded_file_is_covered() -> None:
    covered = {
        "account_get.json",
        "account_list.json",
        "job_create.json",
        "job_delete.json",
        "job_get.json",
        "job_list.json",
        "job_run.json",
        "run_cancel.json",
        "run_get.json",
        "run_get_artifact.json",
        "run_list.json",
        "run_list_artifacts.json",
    }
    assert {p.name for p in RECORDED.glob("*.json")} == covered


def test_accounts_parse() -> None:
    account = Account.from_api(_data("account_get.json"))
    assert (account.id, account.plan, account.locked) == (123456, "enterprise", False)
    (listed,) = [Account.from_api(a) for a in _data("account_list.json")]
    assert (listed.id, listed.name, listed.identifier) == (1, "Jaffle Shop", "jaffle-123")


@pytest.mark.parametrize("name", ["job_get.json", "job_create.json", "job_delete.json"])
def test_jobs_parse(name: str) -> None:
    job = Job.from_api(_data(name))
    assert job.account_id == 123456
    assert job.project_id == 123457
    assert job.environment_id == 49819
    assert job.dbt_version is None  # null in the recording, a plain string in the spec
    assert job.execute_steps
    assert all(step.startswith("dbt ") for step in job.execute_steps)
    assert job.threads in {1, 4}
    assert job.created_at is not None
    assert job.created_at.tzinfo is not None
    assert job.raw["schedule"]["cron"] == "0 * * * *"


def test_job_list_parses() -> None:
    (job,) = [Job.from_api(j) for j in _data("job_list.json")]
    assert (job.id, job.name, job.target_name) == (43167, "Do nothing!", "default")


def test_triggered_run_parses() -> None:
    run = Run.from_api(_data("job_run.json"))
    assert run.id == 34929305
    assert run.job_id == 43167
    assert run.status is RunStatus.SUCCESS
    assert run.is_terminal
    assert run.is_complete
    assert not run.in_progress
    assert run.started_at == datetime(2021, 11, 26, 16, 49, 20, 535987, tzinfo=timezone.utc)
    assert run.duration_seconds == 51.0
    assert run.run_steps == []
    assert run.trigger_cause is None  # "trigger": null


def test_cancelled_run_parses_with_null_start() -> None:
    run = Run.from_api(_data("run_cancel.json"))
    assert run.status is RunStatus.CANCELLED
    assert run.started_at is None
    assert run.git_branch is None
    assert run.status_message == "Cancelled by user."


def test_got_run_parses() -> None:
    run = Run.from_api(_data("run_get.json"))
    assert (run.id, run.status, run.duration_seconds) == (36053848, RunStatus.SUCCESS, 110.0)


def test_run_list_with_string_ids_humanized_status_and_epoch_times_parses() -> None:
    runs = [Run.from_api(r) for r in _data("run_list.json")]
    assert [r.id for r in runs] == [40650768, 40538548]
    first = runs[0]
    assert first.status is RunStatus.SUCCESS
    assert first.job_id == 49663
    assert first.account_id == 123456
    assert first.finished_at == datetime.fromtimestamp(1642378181, tz=timezone.utc)
    assert first.duration_seconds == 416.0
    assert first.trigger_cause == "scheduled"
    assert first.git_sha == "981c5cf1ba299e942c6c277c38c8dec9b0738dd0"


def test_artifact_list_and_raw_artifact_parse() -> None:
    artifacts = [Artifact.from_api(p, run_id=1) for p in _data("run_list_artifacts.json")]
    assert "run_results.json" in [a.name for a in artifacts]
    assert artifacts[1].name == "raw_customers.csv"
    run_results = json.loads((RECORDED / "run_get_artifact.json").read_text())
    assert {r["unique_id"] for r in run_results["results"]} >= {"seed.jaffle_shop.raw_orders"}
