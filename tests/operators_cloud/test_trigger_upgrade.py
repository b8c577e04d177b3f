"""Tasks deferred across a provider upgrade: what the previous version wrote is read by this one.

A triggerer restarted on the new version rebuilds each trigger from the classpath and kwargs stored
in the metadata database, and the task resumes with the event payload the old trigger fired. The
literals below were written by the previous version's code (``DbtCloudRunTrigger.serialize()``,
the kwargs as Airflow stores them, and its ``TriggerEvent`` payloads): copied, never recomputed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

try:  # how Airflow 3.3's triggerer decodes a stored trigger row; the rows below are 3.3's
    from airflow.serialization.decoders import smart_decode_trigger_kwargs
except ImportError:  # pragma: no cover - Airflow < 3.3
    pytest.skip("the stored trigger rows of this test are Airflow 3.3's", allow_module_level=True)

try:
    from airflow._shared.module_loading import import_string  # the triggerer's own loader
except ImportError:  # Airflow < 3.3
    from airflow.utils.module_loading import import_string  # type: ignore[no-redef]
from airflow.models.trigger import Trigger
from support.cloud_operators import run_gets

from airflow_dbt_provider.cloud import DbtCloudClient, TriggerRunOptions
from airflow_dbt_provider.compat import AirflowSensorTimeout
from airflow_dbt_provider.operators.dbt_cloud import DbtCloudRunError, DbtCloudRunJobOperator
from airflow_dbt_provider.sensors.dbt_cloud import DbtCloudRunSensor
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

#: ``DbtCloudRunTrigger(run_id=4242, dbt_cloud_conn_id="dbt_cloud_prod", account_id=70403,
#: poll_interval=30, end_time=1795000000.25, cancel_on_kill=True).serialize()`` before the move to aiohttp.
OLD_SERIALIZED = (
    "airflow_dbt_provider.triggers.dbt_cloud.DbtCloudRunTrigger",
    {
        "run_id": 4242,
        "dbt_cloud_conn_id": "dbt_cloud_prod",
        "account_id": 70403,
        "poll_interval": 30.0,
        "end_time": 1795000000.25,
        "cancel_on_kill": True,
    },
)
#: The same kwargs as the metadata database held them (``airflow.sdk.serde.serialize``, JSON).
OLD_STORED_KWARGS = (
    '{"run_id": 4242, "dbt_cloud_conn_id": "dbt_cloud_prod", "account_id": 70403, '
    '"poll_interval": 30.0, "end_time": 1795000000.25, "cancel_on_kill": true}'
)
#: A trigger with every default, as the previous version serialized it.
OLD_DEFAULTS_STORED_KWARGS = (
    '{"run_id": 4242, "dbt_cloud_conn_id": "dbt_cloud_api_default", "account_id": null, '
    '"poll_interval": 60.0, "end_time": null, "cancel_on_kill": true}'
)
#: Event payloads the previous version's trigger fired, one per status (run 4242).
OLD_EVENTS: dict[str, dict[str, Any]] = {
    "success": {"status": "success", "run_id": 4242, "run_status": 10, "message": "run 4242 succeeded"},
    "error": {
        "status": "error",
        "run_id": 4242,
        "run_status": 20,
        "message": "run 4242 failed: see its steps",
    },
    "cancelled": {
        "status": "cancelled",
        "run_id": 4242,
        "run_status": 30,
        "message": "run 4242 was cancelled in dbt Cloud",
    },
    "timeout": {
        "status": "timeout",
        "run_id": 4242,
        "run_status": None,
        "message": "run 4242 did not finish before the deadline",
    },
    "failed": {
        "status": "failed",
        "run_id": 4242,
        "run_status": None,
        "message": "gave up watching run 4242: dbt Cloud rejected the API token (HTTP 401)",
    },
}


@pytest.mark.parametrize("stored", [OLD_STORED_KWARGS, OLD_DEFAULTS_STORED_KWARGS], ids=["set", "defaults"])
def test_the_triggerer_rebuilds_an_old_trigger_and_it_serializes_the_same(stored: str) -> None:
    classpath = OLD_SERIALIZED[0]
    # What the triggerer does with a stored row (TriggerRunner.create_triggers).
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in Trigger._decrypt_kwargs(stored).items()}
    trigger = import_string(classpath)(**kwargs)
    assert trigger.serialize() == (classpath, json.loads(stored))
    if stored is OLD_STORED_KWARGS:
        assert trigger.serialize() == OLD_SERIALIZED


def _restored(run_id: int, account_id: int) -> Any:
    """The old trigger's kwargs, pointed at a live emulator run (same keys, same types)."""
    kwargs = {
        **OLD_SERIALIZED[1],
        "run_id": run_id,
        "account_id": account_id,
        "dbt_cloud_conn_id": "dbt_cloud_api_default",
        "poll_interval": 0.05,
        "end_time": time.time() + 60.0,
    }
    return import_string(OLD_SERIALIZED[0])(**json.loads(json.dumps(kwargs)))


@pytest.mark.parametrize(("job", "status"), [("success", "success"), ("fail", "error")])
async def test_a_rebuilt_trigger_fires_the_payload_the_old_version_fired(
    emulator: DbtCloudEmulator, client: DbtCloudClient, job: str, status: str
) -> None:
    run_id = client.trigger_run(emulator.world.job_ids[job], TriggerRunOptions(cause="upgrade")).id
    trigger = _restored(run_id, emulator.account_id)
    events = await asyncio.wait_for(_events(trigger), 60)
    old = OLD_EVENTS[status]
    expected = {**old, "run_id": run_id, "message": old["message"].replace("4242", str(run_id))}
    if status == "error":  # the message quotes the run's status message, as the old one did
        expected["message"] = events[0]["message"]
        assert str(events[0]["message"]).startswith(f"run {run_id} failed: ")
    assert events == [expected]
    assert run_gets(emulator, run_id)


async def _events(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def _old_event(status: str, run_id: int) -> dict[str, Any]:
    old = OLD_EVENTS[status]
    return {**old, "run_id": run_id, "message": old["message"].replace("4242", str(run_id))}


def test_a_sensor_resumes_from_every_old_payload(emulator: DbtCloudEmulator, client: DbtCloudClient) -> None:
    failing = client.trigger_run(emulator.world.job_ids["fail"], TriggerRunOptions(cause="upgrade")).id
    sensor = DbtCloudRunSensor(task_id="wait", run_id=failing)
    context: Any = {}  # the sensor's resume reads only the event
    assert sensor.execute_complete(context, _old_event("success", 4242)) == 4242
    with pytest.raises(AirflowSensorTimeout, match="run 4242 did not finish"):
        sensor.execute_complete(context, _old_event("timeout", 4242))
    with pytest.raises(DbtCloudRunError, match="gave up watching run 4242: dbt Cloud rejected the API token"):
        sensor.execute_complete(context, _old_event("failed", 4242))
    while not client.get_run(failing).is_terminal:
        time.sleep(0.05)
    with pytest.raises(DbtCloudRunError, match="assert_order_amount_not_negative"):
        sensor.execute_complete(context, _old_event("error", failing))


def test_the_run_job_operator_resumes_from_an_old_failed_payload(emulator: DbtCloudEmulator) -> None:
    operator = DbtCloudRunJobOperator(task_id="run", job_id=1)
    context: Any = {}  # a "failed" event ends the task before anything of the context is used
    with pytest.raises(DbtCloudRunError, match="could not watch dbt Cloud run 4242: gave up watching"):
        operator.execute_complete(context, _old_event("failed", 4242))
    assert operator.run_id == 4242
