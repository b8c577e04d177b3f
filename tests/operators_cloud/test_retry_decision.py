"""Every branch of the retry decision: adopt, retry from failure, or trigger a fresh run."""

from __future__ import annotations

import pytest

from airflow_dbt_provider.cloud import RunStatus
from airflow_dbt_provider.cloud.run_start import RunStart, StoredRun, decide_run_start

JOB = 40001
MAX_TRIES = 3  # a task with retries=3 that nobody cleared
PREVIOUS = StoredRun(run_id=70000001, job_id=JOB, try_number=1, max_tries=MAX_TRIES)


def decide(
    stored: StoredRun | None = PREVIOUS,
    status: RunStatus | None = RunStatus.RUNNING,
    *,
    retry_from_failure: bool = False,
    in_flight: int | None = None,
    max_tries: int = MAX_TRIES,
    job_id: int = JOB,
) -> tuple[RunStart, int | None]:
    decision = decide_run_start(
        job_id=job_id,
        max_tries=max_tries,
        stored=stored,
        stored_status=status,
        retry_from_failure=retry_from_failure,
        in_flight_run_id=in_flight,
    )
    assert decision.reason  # every decision says why, for the task log
    return decision.action, decision.run_id


def test_first_try_triggers() -> None:
    assert decide(stored=None, status=None) == (RunStart.TRIGGER, None)


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING])
def test_previous_run_in_flight_is_adopted(status: RunStatus) -> None:
    """The worker died while the run went on: watch that run, trigger nothing."""
    assert decide(status=status) == (RunStart.ADOPT, PREVIOUS.run_id)


def test_previous_run_in_flight_is_adopted_even_with_retry_from_failure() -> None:
    assert decide(status=RunStatus.RUNNING, retry_from_failure=True) == (RunStart.ADOPT, PREVIOUS.run_id)


def test_failed_previous_run_is_retried_with_retry_from_failure() -> None:
    assert decide(status=RunStatus.ERROR, retry_from_failure=True) == (RunStart.RETRY, PREVIOUS.run_id)


def test_failed_previous_run_without_retry_from_failure_triggers_fresh() -> None:
    assert decide(status=RunStatus.ERROR) == (RunStart.TRIGGER, None)


def test_cancelled_previous_run_is_not_retried_but_triggered_fresh() -> None:
    """dbt Cloud retries failed runs; a cancelled run (e.g. our timeout) starts over."""
    assert decide(status=RunStatus.CANCELLED, retry_from_failure=True) == (RunStart.TRIGGER, None)


def test_succeeded_previous_run_triggers_fresh() -> None:
    assert decide(status=RunStatus.SUCCESS, retry_from_failure=True) == (RunStart.TRIGGER, None)


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.ERROR])
def test_cleared_by_user_triggers_fresh(status: RunStatus) -> None:
    """A clear recomputes max_tries: the user asked for a new run, in flight or failed."""
    assert decide(status=status, retry_from_failure=True, max_tries=MAX_TRIES + 2) == (RunStart.TRIGGER, None)


def test_previous_run_of_another_job_is_ignored() -> None:
    """The DAG now runs another job: the stored run is not this job's."""
    assert decide(status=RunStatus.RUNNING, job_id=JOB + 1) == (RunStart.TRIGGER, None)


def test_vanished_previous_run_triggers_fresh() -> None:
    assert decide(status=None, retry_from_failure=True) == (RunStart.TRIGGER, None)


def test_reuse_existing_run_adopts_any_in_flight_run() -> None:
    assert decide(stored=None, status=None, in_flight=70000009) == (RunStart.ADOPT, 70000009)


def test_own_in_flight_run_wins_over_reuse_existing_run() -> None:
    assert decide(status=RunStatus.RUNNING, in_flight=70000009) == (RunStart.ADOPT, PREVIOUS.run_id)


def test_retry_from_failure_wins_over_reuse_existing_run() -> None:
    assert decide(status=RunStatus.ERROR, retry_from_failure=True, in_flight=70000009) == (
        RunStart.RETRY,
        PREVIOUS.run_id,
    )


def test_reuse_existing_run_adopts_after_a_clear() -> None:
    assert decide(status=RunStatus.SUCCESS, max_tries=9, in_flight=70000009) == (RunStart.ADOPT, 70000009)


def test_stored_run_round_trips_through_json_primitives() -> None:
    state = PREVIOUS.to_state()
    assert all(type(v) is int for v in state.values())
    assert StoredRun.from_state(state) == PREVIOUS


@pytest.mark.parametrize(
    "value",
    [None, "70000001", [1, 2], {}, {"run_id": "x", "job_id": 1, "max_tries": 1}, {"run_id": 1, "job_id": 2}],
)
def test_unreadable_stored_state_counts_as_nothing_stored(value: object) -> None:
    assert StoredRun.from_state(value) is None
