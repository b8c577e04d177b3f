"""Parameters as the official provider has them: ``additional_run_config`` (sent whole, winning over
explicit parameters), checks at DAG-parse time in the user's own parameter names, ``durable`` and
``include_related`` — against the emulator through ``dag.test()`` where a run is involved.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.cloud_dags import make_dag, run_dag
from support.cloud_operators import posts, wait_terminal

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.operators.dbt_cloud import (
    DbtCloudListJobsOperator,
    DbtCloudListRunsOperator,
    DbtCloudRunJobOperator,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = [pytest.mark.timeout(300, method="thread")]
OVERRIDE = "additional_run_config['threads_override']=8 overrides threads_override=4"


def _trigger(emulator: DbtCloudEmulator, name: str, **kwargs: Any) -> dict[str, Any]:
    """Run the operator fire-and-forget; returns the trigger body dbt Cloud received."""
    with make_dag(f"dbt_cloud_run_config_{name}") as dag:
        DbtCloudRunJobOperator(
            task_id="run", job_id=emulator.world.job_ids["success"], wait_for_termination=False, **kwargs
        )
    result = run_dag(dag)
    assert result.state("run") == "success", result.all_errors()
    (triggered,) = posts(emulator, "/run/")
    return dict(triggered.body)


@pytest.mark.usefixtures("airflow_db")
def test_additional_run_config_is_sent_whole_and_wins_with_one_warning(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    body = _trigger(
        emulator,
        "wins",
        threads_override=4,
        git_branch="main",
        additional_run_config={"threads_override": 8, "git_branch": "main", "future_field": None},
    )
    assert body["threads_override"] == 8
    assert body["git_branch"] == "main"
    assert "future_field" in body  # every entry is sent, as the official hook's payload.update does
    warnings = [line for line in capfd.readouterr().out.splitlines() if "overrides" in line]
    assert len(warnings) == 1, warnings
    assert OVERRIDE in warnings[0]
    assert "git_branch" not in warnings[0]  # same value: nothing was overridden


@pytest.mark.usefixtures("airflow_db")
def test_additional_run_config_cause_replaces_the_trigger_reason(emulator: DbtCloudEmulator) -> None:
    body = _trigger(emulator, "cause", additional_run_config={"cause": "from additional_run_config"})
    # The task instance's marker is still appended: a retry finds its run by it (cloud/run_start.py).
    reason, marker = body["cause"].rsplit(" ", 1)
    assert reason == "from additional_run_config"
    assert marker.startswith("[airflow:")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"additional_run_config": {"threads_override": "eight"}},
            "additional_run_config['threads_override'] must be a number",
        ),
        (
            {"additional_run_config": {"steps_override": "dbt run"}},
            "additional_run_config['steps_override'] must be a non-empty list of dbt commands",
        ),
        (
            {"additional_run_config": {"generate_docs_override": "yes"}},
            "additional_run_config['generate_docs_override'] must be True, False or None",
        ),
        ({"additional_run_config": ["threads_override", 8]}, "additional_run_config must be a dict"),
        ({"threads_override": "many"}, "threads_override must be a number"),
        ({"account_id": "acme"}, "account_id must be a number"),
        ({"steps_override": ["dbt build", "rm -rf /"]}, "every steps_override entry must be a dbt command"),
        (
            {"github_pull_request_id": 1, "additional_run_config": {"gitlab_merge_request_id": 2}},
            "give at most one pull/merge request id",
        ),
    ],
    ids=[
        "config-int",
        "config-steps",
        "config-bool",
        "config-not-dict",
        "int",
        "account",
        "steps",
        "two-prs",
    ],
)
def test_bad_trigger_fields_fail_at_dag_parse_time_in_the_users_names(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        DbtCloudRunJobOperator(task_id="t", job_id=1, **kwargs)
    assert str(raised.value).startswith("t: ")
    assert "extra" not in str(raised.value)


def test_a_non_numeric_job_id_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match=r"^t: job_id must be a number"):
        DbtCloudRunJobOperator(task_id="t", job_id="nightly")


def test_templated_trigger_fields_are_checked_when_rendered_not_at_parse_time() -> None:
    DbtCloudRunJobOperator(
        task_id="t",
        job_id="{{ params.job }}",
        threads_override="{{ params.threads }}",
        additional_run_config={"threads_override": "{{ params.threads }}", "steps_override": ["dbt build"]},
    )


def test_durable_false_warns_once_that_it_is_ignored(capfd: pytest.CaptureFixture[str]) -> None:
    DbtCloudRunJobOperator(task_id="quiet", job_id=1, durable=True)
    DbtCloudRunJobOperator(task_id="loud", job_id=1, durable=False)
    ignored = [line for line in capfd.readouterr().out.splitlines() if "durable=False is ignored" in line]
    assert len(ignored) == 1
    assert "loud: durable=False" in ignored[0]


def test_list_runs_include_related_adds_the_relations(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    job_id = emulator.world.job_ids["success"]
    run = client.trigger_run(job_id, TriggerRunOptions(cause="include_related"))
    wait_terminal(client, run.id)
    op = DbtCloudListRunsOperator(task_id="l", job_id=job_id, include_related=["job", "environment"])
    (listed,) = op.execute({})  # type: ignore[arg-type]
    assert listed["id"] == run.id
    assert listed["job"]["name"] == emulator.world.job_names["success"]
    assert listed["environment"]["name"] == emulator.world.environment_name
    (listed,) = DbtCloudListRunsOperator(task_id="plain", job_id=job_id).execute({})  # type: ignore[arg-type]
    assert "job" not in listed
    with pytest.raises(ValueError, match="include_related must be a list of relation names"):
        DbtCloudListRunsOperator(task_id="bad", include_related=[1])  # type: ignore[list-item]


def test_list_jobs_include_related_is_accepted_and_warned_about(
    emulator: DbtCloudEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    op = DbtCloudListJobsOperator(task_id="j", include_related=["environment"])
    assert "j: include_related is ignored" in capfd.readouterr().out
    assert sorted(op.execute({})) == sorted(emulator.world.job_ids.values())  # type: ignore[arg-type]
