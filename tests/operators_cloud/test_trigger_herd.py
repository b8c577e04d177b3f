"""Many DbtCloudRunTriggers on one event loop: spread first polls, one session, one lookup."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.cloud_operators import run_gets

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.cloud.pool import loop_pool
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator
from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

HERD = 25


def test_first_polls_spread_over_one_interval_and_never_past_the_deadline() -> None:
    free = DbtCloudRunTrigger(run_id=1, poll_interval=10.0)
    delays = [free._first_poll_delay() for _ in range(200)]
    assert all(0.0 <= d <= 10.0 for d in delays)
    assert max(delays) - min(delays) > 2.0  # spread, not in step
    near = DbtCloudRunTrigger(run_id=1, poll_interval=10.0, end_time=time.time() + 1.0)
    assert all(0.0 <= near._first_poll_delay() <= 1.0 for _ in range(50))
    past = DbtCloudRunTrigger(run_id=1, poll_interval=10.0, end_time=time.time() - 5.0)
    assert past._first_poll_delay() == 0.0


async def test_a_herd_shares_one_session_and_one_connection_lookup(
    emulator: DbtCloudEmulator, client: DbtCloudClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = 0
    read = DbtCloudHook.aget_settings

    async def counting(self: DbtCloudHook) -> object:
        nonlocal lookups
        lookups += 1
        return await read(self)

    monkeypatch.setattr(DbtCloudHook, "aget_settings", counting)
    job = emulator.world.job_ids["success"]
    run_ids = [client.trigger_run(job, TriggerRunOptions(cause=f"herd {i}")).id for i in range(HERD)]
    triggers = [DbtCloudRunTrigger(run_id=r, poll_interval=0.1, end_time=time.time() + 120) for r in run_ids]
    sessions: set[int] = set()

    async def watch(t: DbtCloudRunTrigger) -> str:
        events = [e.payload["status"] async for e in t.run()]
        return str(events)

    async def sample() -> None:  # which sessions the triggers hold while they watch
        while True:
            sessions.update(id(c._session) for c in (t._client for t in triggers) if c and c._session)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    statuses = await asyncio.wait_for(asyncio.gather(*(watch(t) for t in triggers)), 120)
    sampler.cancel()
    assert statuses == ["['success']"] * HERD
    assert len(sessions) == 1
    assert lookups == 1
    assert len(loop_pool()) == 0  # the last trigger's release closed the shared session
    assert all(run_gets(emulator, r) for r in run_ids)
