"""Finding a task instance's dbt Cloud run by the marker in its cause, against the real emulator.

Airflow-free: the token, the cause (255-character limit, OpenLineage JSON), the search through the
job's runs newest first (paging past 100), retries followed through ``retrying_run_id``, and the
decision built on them: adopt only an in-flight run of the same ``max_tries``, never a cancelled one.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from support.cloud_operators import wait_status

from airflow_dbt_provider.cloud import DbtCloudClient, Run, RunStatus, TriggerRunOptions
from airflow_dbt_provider.cloud.options import MAX_CAUSE_LENGTH
from airflow_dbt_provider.cloud.run_start import (
    LINEAGE_MARKER_KEY,
    RunMark,
    RunStart,
    StoredRun,
    TaskInstanceRef,
    compose_cause,
    compose_lineage_cause,
    find_task_run,
    lineage_room,
    plan_run_start,
)
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

TI = TaskInstanceRef("nightly", "scheduled__2026-12-01T00:00:00+00:00", "dbt_cloud", -1, 1, 3)


def retry_of(ti: TaskInstanceRef, try_number: int, max_tries: int | None = None) -> TaskInstanceRef:
    max_tries = ti.max_tries if max_tries is None else max_tries
    return TaskInstanceRef(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, try_number, max_tries)


def trigger(client: DbtCloudClient, job_id: int, cause: str) -> Run:
    return client.trigger_run(job_id, TriggerRunOptions(cause=cause))


def list_requests(emulator: DbtCloudEmulator) -> int:
    return len([r for r in emulator.requests() if r.method == "GET" and r.path.endswith("/runs/")])


# --- token and cause -----------------------------------------------------------------------------


def test_token_is_stable_per_task_instance_and_differs_between_them() -> None:
    assert TI.token == retry_of(TI, 4, 9).token  # tries and clears keep it
    others = [
        TaskInstanceRef("other", TI.run_id, TI.task_id, -1, 1, 3),
        TaskInstanceRef(TI.dag_id, "manual__1", TI.task_id, -1, 1, 3),
        TaskInstanceRef(TI.dag_id, TI.run_id, "other", -1, 1, 3),
        TaskInstanceRef(TI.dag_id, TI.run_id, TI.task_id, 0, 1, 3),
        TaskInstanceRef(TI.dag_id, TI.run_id, TI.task_id, 1, 1, 3),
    ]
    assert len({TI.token, *(o.token for o in others)}) == 6
    assert len(TI.token) == 12


def test_marker_round_trips_and_the_last_one_wins() -> None:
    ti = retry_of(TI, 2, 5)
    assert RunMark.parse(f"copied [airflow:{'0' * 12}:1:1] then {ti.marker}") == RunMark(ti.token, 2, 5)
    assert RunMark.parse("Triggered via API") is None
    assert RunMark.parse(None) is None


def test_cause_keeps_the_reason_and_ends_with_the_marker() -> None:
    assert compose_cause("  nightly\n refresh ", TI) == f"nightly refresh {TI.marker}"


def test_long_reason_is_shortened_never_the_marker() -> None:
    ti = retry_of(TI, 12345, 67890)
    cause = compose_cause("x" * 1000, ti)
    assert len(cause) == MAX_CAUSE_LENGTH
    assert cause.endswith(f"… {ti.marker}")
    assert RunMark.parse(cause) == RunMark(ti.token, 12345, 67890)
    TriggerRunOptions(cause=cause)  # accepted as it is


def test_lineage_cause_stays_json_with_the_marker_as_a_key() -> None:
    parent = json.dumps({"parent": {"run": {"runId": "0193-abc"}, "job": {"namespace": "ns", "name": "d.t"}}})
    cause = compose_lineage_cause(parent, TI)
    assert cause is not None
    payload = json.loads(cause)
    assert payload[LINEAGE_MARKER_KEY] == TI.marker
    assert payload["parent"]["run"]["runId"] == "0193-abc"
    assert RunMark.parse(cause) == RunMark(TI.token, 1, 3)


def test_lineage_room_is_exactly_what_fits() -> None:
    room = lineage_room(TI)
    fits = json.dumps({"p": "y" * (room - len('{"p":""}'))}, separators=(",", ":"))
    assert len(fits) == room
    cause = compose_lineage_cause(fits, TI)
    assert cause is not None
    assert len(cause) == MAX_CAUSE_LENGTH
    too_long = json.dumps({"p": "y" * (room - len('{"p":""}') + 1)}, separators=(",", ":"))
    assert compose_lineage_cause(too_long, TI) is None
    assert compose_lineage_cause("not json", TI) is None


# --- the search ----------------------------------------------------------------------------------


def test_search_pages_past_100_newer_runs(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    job = emulator.world.job_ids["long"]
    mine = trigger(client, job, compose_cause("mine", TI))
    for i in range(150):  # other task instances' runs, newer than ours
        trigger(client, job, compose_cause("theirs", TaskInstanceRef("other", "r", "t", i, 1, 0)))
    before = list_requests(emulator)
    found = find_task_run(
        client, job, retry_of(TI, 2), since=datetime.now(timezone.utc) - timedelta(minutes=5)
    )
    assert found is not None
    assert (found.run.id, found.mark) == (mine.id, RunMark(TI.token, 1, 3))
    assert list_requests(emulator) - before == 2  # two pages of 100, newest first; no more


def test_search_stops_at_runs_older_than_the_dag_run(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    job = emulator.world.job_ids["long"]
    trigger(client, job, compose_cause("mine, from a DAG run long ago", TI))
    for i in range(120):
        trigger(client, job, f"someone else {i}")
    before = list_requests(emulator)
    later = datetime.now(timezone.utc) + timedelta(hours=2)  # the DAG run started after all of them
    assert find_task_run(client, job, retry_of(TI, 2), since=later) is None
    assert list_requests(emulator) - before == 1  # the first page already reached the DAG run's start


def test_search_ignores_other_jobs(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    trigger(client, emulator.world.job_ids["success"], compose_cause("mine", TI))
    assert find_task_run(client, emulator.world.job_ids["long"], retry_of(TI, 2), since=None) is None


def test_search_follows_a_retry_to_its_newest_run(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    job = emulator.world.job_ids["fail"]
    first = trigger(client, job, compose_cause("mine", TI))
    wait_status(client, first.id, RunStatus.ERROR)
    second = client.retry_run(first.id)  # no cause of ours: dbt Cloud's retry takes none
    trigger(client, job, "someone else")
    wait_status(client, second.id, RunStatus.ERROR)
    third = client.retry_run(second.id)
    found = find_task_run(client, job, retry_of(TI, 3), since=None)
    assert found is not None
    assert (found.run.id, found.marked_run_id) == (third.id, first.id)


# --- the decision on what the search found ------------------------------------------------------


def plan(
    client: DbtCloudClient, job: int, ti: TaskInstanceRef, **kwargs: object
) -> tuple[RunStart, int | None]:
    options: dict = {"stored": None, "since": None, "retry_from_failure": False, "reuse_existing_run": False}
    options.update(kwargs)
    decision = plan_run_start(client, job_id=job, ti=ti, **options)
    return decision.action, decision.run_id


def test_in_flight_run_of_an_earlier_try_is_adopted(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    job = emulator.world.job_ids["long"]
    run = trigger(client, job, compose_cause("try 1", TI))
    assert plan(client, job, retry_of(TI, 2)) == (RunStart.ADOPT, run.id)


def test_cancelled_run_is_never_adopted(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    job = emulator.world.job_ids["long"]
    run = trigger(client, job, compose_cause("try 1", TI))
    client.cancel_run(run.id)
    stored = StoredRun(run.id, job, 1, TI.max_tries)
    assert plan(client, job, retry_of(TI, 2), retry_from_failure=True) == (RunStart.TRIGGER, None)
    assert plan(client, job, retry_of(TI, 2), stored=stored) == (RunStart.TRIGGER, None)


def test_run_of_a_cleared_task_is_not_adopted(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    """A clear recomputes max_tries; the marker of the run before it has the old one."""
    job = emulator.world.job_ids["long"]
    trigger(client, job, compose_cause("try 1", TI))
    assert plan(client, job, retry_of(TI, 2, max_tries=TI.max_tries + 1)) == (RunStart.TRIGGER, None)


def test_failed_run_is_retried_with_retry_from_failure(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    job = emulator.world.job_ids["fail"]
    run = trigger(client, job, compose_cause("try 1", TI))
    wait_status(client, run.id, RunStatus.ERROR)
    assert plan(client, job, retry_of(TI, 2), retry_from_failure=True) == (RunStart.RETRY, run.id)
    assert plan(client, job, retry_of(TI, 2)) == (RunStart.TRIGGER, None)


def test_first_try_reads_no_runs(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    job = emulator.world.job_ids["long"]
    trigger(client, job, compose_cause("a run of this task instance, say from `airflow tasks test`", TI))
    before = list_requests(emulator)
    assert plan(client, job, TI) == (RunStart.TRIGGER, None)
    assert list_requests(emulator) == before


@pytest.mark.parametrize("stored_first", [True, False])
def test_newer_of_store_and_search_wins(
    emulator: DbtCloudEmulator, client: DbtCloudClient, stored_first: bool
) -> None:
    """The store remembers a retry's run; the marker finds a run triggered after it."""
    job = emulator.world.job_ids["long"]
    first = trigger(client, job, compose_cause("marked" if not stored_first else "older, marked", TI))
    other = trigger(client, job, "a run only the store knows")
    stored = StoredRun(other.id if stored_first else first.id, job, 1, TI.max_tries)
    if stored_first:  # store: the newer run; search: the older marked one
        assert plan(client, job, retry_of(TI, 2), stored=stored) == (RunStart.ADOPT, other.id)
    else:  # store: stale; search: newer marked run
        newest = trigger(client, job, compose_cause("try 2", retry_of(TI, 2)))
        assert plan(client, job, retry_of(TI, 3), stored=stored) == (RunStart.ADOPT, newest.id)
