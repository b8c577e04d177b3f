"""Each 404 says what was missing (job, run, account, artifact, project, environment), cleanly.

Against the real emulator: the message names the missing object as the user would ("job 99999 in
account 10001", not "a run of job ..."), quotes dbt Cloud's own explanation once, and has no doubled
punctuation (".;", "..") from gluing dbt Cloud's sentences to ours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from support.dbt_cloud_client import settings_for

from airflow_dbt_provider.cloud import DbtCloudClient, DbtCloudNotFoundError, TriggerRunOptions
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

MISSING = 99999
DOUBLED = re.compile(r"[.;:,]\s*[.;:,]")


def _finished_run(client: DbtCloudClient, emulator: DbtCloudEmulator) -> int:
    run = client.trigger_run(emulator.world.job_ids["success"], TriggerRunOptions(cause="404 test"))
    deadline = time.monotonic() + 120
    while not client.get_run(run.id).is_terminal:
        assert time.monotonic() < deadline, f"run {run.id} did not finish"
        time.sleep(0.05)
    return run.id


def _request(kind: str, client: DbtCloudClient, emulator: DbtCloudEmulator) -> tuple[Callable[[], Any], str]:
    """The request that 404s for ``kind``, and how the message must name what is missing."""
    account, project = client.settings.account_id, emulator.world.project_id
    if kind == "job":
        return lambda: client.trigger_run(
            MISSING, TriggerRunOptions(cause="x")
        ), f"job {MISSING} in account {account}"
    if kind == "run":
        return lambda: client.get_run(MISSING), f"run {MISSING} in account {account}"
    if kind == "account":
        return client.list_jobs, f"account {account}"
    if kind == "artifact":
        run_id = _finished_run(client, emulator)
        return (
            lambda: client.get_artifact(run_id, "nope.json"),
            f"artifact 'nope.json' of run {run_id} in account {account}",
        )
    if kind == "project":
        return lambda: client.list_environments(MISSING), f"project {MISSING} in account {account}"
    assert kind == "environment"
    return (
        lambda: client.get_environment(project, MISSING),
        f"environment {MISSING} of project {project} in account {account}",
    )


@pytest.mark.parametrize("kind", ["job", "run", "account", "artifact", "project", "environment"])
def test_a_404_names_what_was_missing_without_doubled_punctuation(
    emulator: DbtCloudEmulator, kind: str
) -> None:
    account = MISSING if kind == "account" else emulator.world.account_id
    with DbtCloudClient(settings_for(emulator, account_id=account)) as client:
        request, what = _request(kind, client, emulator)
        with pytest.raises(DbtCloudNotFoundError) as raised:
            request()
    message = str(raised.value)
    assert message.startswith(f"dbt Cloud found no {what} (HTTP 404). dbt Cloud said: "), message
    assert message.endswith(
        f"Check that it exists, that the account id ({account}) is right, and that "
        f"{emulator.base_url} is your account's Access URL."
    ), message
    assert not DOUBLED.search(message), message
    assert "no a " not in message


def test_the_issue_example_reads_as_one_sentence_per_fact(emulator: DbtCloudEmulator) -> None:
    """The message the issue quoted, now: the missing job first, dbt Cloud's words once."""
    account = emulator.world.account_id
    with DbtCloudClient(settings_for(emulator)) as client, pytest.raises(DbtCloudNotFoundError) as raised:
        client.trigger_run(MISSING, TriggerRunOptions(cause="x"))
    assert str(raised.value) == (
        f"dbt Cloud found no job 99999 in account {account} (HTTP 404). dbt Cloud said: The requested "
        f"resource was not found; No job 99999 in account {account}. Check that it exists, that the "
        f"account id ({account}) is right, and that {emulator.base_url} is your account's Access URL."
    )
