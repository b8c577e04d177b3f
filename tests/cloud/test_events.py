"""The typed trigger event reads every payload earlier versions fired and writes the same JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_dbt_provider.cloud import Run
from airflow_dbt_provider.cloud.events import RunEvent, RunEventStatus

#: Payloads as the previous version's trigger fired them (copied from its code's output).
OLD_PAYLOADS = [
    {"status": "success", "run_id": 4242, "run_status": 10, "message": "run 4242 succeeded"},
    {"status": "error", "run_id": 4242, "run_status": 20, "message": "run 4242 failed: see its steps"},
    {
        "status": "cancelled",
        "run_id": 4242,
        "run_status": 30,
        "message": "run 4242 was cancelled in dbt Cloud",
    },
    {
        "status": "timeout",
        "run_id": 4242,
        "run_status": None,
        "message": "run 4242 did not finish before the deadline",
    },
    {
        "status": "failed",
        "run_id": 4242,
        "run_status": None,
        "message": "gave up watching run 4242: HTTP 401",
    },
]


@pytest.mark.parametrize("payload", OLD_PAYLOADS, ids=lambda p: p["status"])
def test_old_payloads_round_trip_to_the_same_json(payload: dict[str, Any]) -> None:
    event = RunEvent.from_dict(payload)
    assert event.status is RunEventStatus(payload["status"])
    assert event.run_id == 4242
    assert json.dumps(event.to_dict()) == json.dumps(payload)  # same keys, same order


def test_a_run_that_ended_makes_the_event_the_previous_version_fired() -> None:
    run = Run.from_api({"id": 4242, "status": 20, "status_message": None, "job_definition_id": 1})
    assert RunEvent.of_run(run).to_dict() == OLD_PAYLOADS[1]


@pytest.mark.parametrize(
    "payload", [None, "success", {"run_id": 1}, {"status": "exploded", "run_id": 1}, {"status": "success"}]
)
def test_anything_else_is_refused(payload: Any) -> None:
    with pytest.raises(ValueError, match=r"event|status"):
        RunEvent.from_dict(payload)
