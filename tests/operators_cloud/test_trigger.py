"""DbtCloudRunTrigger under asyncio against the emulator: outcomes, faults, deadline, restart, cleanup."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from support.cloud_operators import CONN_ENV, SECRET_TOKEN, connection_json, posts, run_gets

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.triggers.dbt_cloud import PERSISTENT_ERROR_POLLS, DbtCloudRunTrigger

RUN_PATH = "/api/v2/accounts/*/runs/*/"


def start(client: DbtCloudClient, emulator: DbtCloudEmulator, job: str) -> int:
    return client.trigger_run(emulator.world.job_ids[job], TriggerRunOptions(cause="trigger test")).id


def trigger(run_id: int, *, deadline_in: float = 60.0, **kwargs: object) -> DbtCloudRunTrigger:
    return DbtCloudRunTrigger(run_id=run_id, poll_interval=0.05, end_time=time.time() + deadline_in, **kwargs)  # type: ignore[arg-type]


async def first_event(t: DbtCloudRunTrigger, timeout: float = 60.0) -> dict[str, object]:
    async def _run() -> dict[str, object]:
        events = [e.payload async for e in t.run()]
        assert len(events) == 1, events
        return events[0]

    return await asyncio.wait_for(_run(), timeout)


@pytest.mark.parametrize(("job", "status", "code"), [("success", "success", 10), ("fail", "error", 20)])
async def test_fires_the_runs_terminal_status(
    emulator: DbtCloudEmulator, client: DbtCloudClient, job: str, status: str, code: int
) -> None:
    run_id = start(client, emulator, job)
    event = await first_event(trigger(run_id))
    assert event["status"] == status
    assert event["run_id"] == run_id
    assert event["run_status"] == code
    assert len(run_gets(emulator, run_id)) >= 1


async def test_fires_cancelled_when_the_run_is_cancelled_in_dbt_cloud(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    run_id = start(client, emulator, "long")
    watcher = asyncio.create_task(first_event(trigger(run_id)))
    await asyncio.sleep(0.2)
    await asyncio.to_thread(client.cancel_run, run_id)
    event = await watcher
    assert event["status"] == "cancelled"
    assert "cancelled in dbt Cloud" in str(event["message"])


async def test_reports_the_deadline_and_leaves_cancelling_to_the_operator(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    run_id = start(client, emulator, "long")
    event = await first_event(trigger(run_id, deadline_in=0.3))
    assert event["status"] == "timeout"
    assert posts(emulator, "/cancel/") == []


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503, "count": 5},
        {"kind": "status", "status": 500, "count": 4},
        {"kind": "status", "status": 429, "retry_after": 0.05, "count": 4},
        {"kind": "reset", "count": 4},
        {"kind": "malformed", "count": 2},
    ],
    ids=["503", "500", "429", "reset", "malformed"],
)
async def test_transient_faults_during_deferral_end_in_success(
    emulator: DbtCloudEmulator, client: DbtCloudClient, fault: dict[str, object]
) -> None:
    """More faults in a row than the client retries: the trigger keeps polling, never fails."""
    run_id = start(client, emulator, "success")
    emulator.inject_fault(path=RUN_PATH, method="GET", **fault)  # type: ignore[arg-type]
    event = await first_event(trigger(run_id))
    assert event["status"] == "success"
    answered = [r.status for r in run_gets(emulator, run_id)]
    assert answered[-1] == 200
    if fault["kind"] == "status":
        assert answered.count(fault["status"]) == fault["count"]


async def test_unknown_run_ends_the_watch_after_persistent_404s(emulator: DbtCloudEmulator) -> None:
    event = await first_event(trigger(99999999))
    assert event["status"] == "failed"
    assert "99999999" in str(event["message"])
    assert len(run_gets(emulator, 99999999)) == PERSISTENT_ERROR_POLLS


async def test_wrong_token_ends_the_watch_without_leaking_it(
    emulator: DbtCloudEmulator, client: DbtCloudClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(client, emulator, "long")
    wrong = json.loads(connection_json(emulator))
    wrong["password"] = SECRET_TOKEN + "-revoked"
    monkeypatch.setenv(CONN_ENV, json.dumps(wrong))
    event = await first_event(trigger(run_id))
    assert event["status"] == "failed"
    assert SECRET_TOKEN not in json.dumps(event)


async def test_missing_connection_fires_failed_naming_it(emulator: DbtCloudEmulator) -> None:
    event = await first_event(trigger(1, dbt_cloud_conn_id="no_such_dbt_cloud_conn"))
    assert event["status"] == "failed"
    assert "no_such_dbt_cloud_conn" in str(event["message"])


def test_serializes_only_json_primitives_and_round_trips() -> None:
    original = DbtCloudRunTrigger(
        run_id=7, dbt_cloud_conn_id="c", account_id=5, poll_interval=3, end_time=12.5, cancel_on_kill=False
    )
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_dbt_provider.triggers.dbt_cloud.DbtCloudRunTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert all(v is None or isinstance(v, str | int | float | bool) for v in kwargs.values())
    assert DbtCloudRunTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_running_twice_is_harmless(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    """A triggerer restart or redistribution runs the same trigger again: it only reads."""
    run_id = start(client, emulator, "success")
    before = len(emulator.requests())
    first, second = await asyncio.gather(first_event(trigger(run_id)), first_event(trigger(run_id)))
    assert first["status"] == second["status"] == "success"
    assert [r for r in emulator.requests()[before:] if r.method != "GET"] == []


async def test_cleanup_releases_the_connection_and_never_cancels(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    """A triggerer shutting down cancels run() and calls cleanup(): the run must go on."""
    run_id = start(client, emulator, "long")
    t = trigger(run_id)
    task = asyncio.create_task(first_event(t))
    for _ in range(1000):  # until the trigger has polled once
        if run_gets(emulator, run_id):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await t.cleanup()
    assert t._client is None
    assert posts(emulator, "/cancel/") == []
    assert not client.get_run(run_id).is_terminal


async def test_on_kill_without_a_known_task_instance_leaves_the_run_alone(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    """No task state to check (not under a triggerer): never cancel on a guess."""
    run_id = start(client, emulator, "long")
    await trigger(run_id).on_kill()
    assert posts(emulator, "/cancel/") == []


async def test_on_kill_with_cancel_on_kill_false_does_nothing(
    emulator: DbtCloudEmulator, client: DbtCloudClient
) -> None:
    run_id = start(client, emulator, "long")
    before = len(emulator.requests())
    await trigger(run_id, cancel_on_kill=False).on_kill()
    assert emulator.requests()[before:] == []
