"""Helpers for the dbt Cloud operator tests: an emulator connection and request-log queries."""

from __future__ import annotations

import json
import time
from typing import Any

from airflow_dbt_provider.cloud import DbtCloudClient, Run, RunStatus
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator, RecordedRequest

SECRET_TOKEN = "dbtc_OpErAtOrS-7d1e0a9c42-do-not-leak"
#: A default-world job lasts about 8.5 emulated seconds: under half a second at this speed.
SPEED = 20.0
CONN_ENV = "AIRFLOW_CONN_DBT_CLOUD_API_DEFAULT"


def connection_json(emulator: DbtCloudEmulator, **extra: Any) -> str:
    """The connection to the emulator, as ``AIRFLOW_CONN_DBT_CLOUD_API_DEFAULT`` expects it."""
    extras: dict[str, Any] = {
        "ca_bundle": str(emulator.ca_cert_path),
        "timeout": 10,
        "retry_max_attempts": 3,
        "retry_backoff_base": 0.02,
        "retry_backoff_max": 0.1,
    }
    extras.update(extra)
    return json.dumps(
        {
            "conn_type": "dbt_cloud_api",
            "host": emulator.base_url,
            "login": str(emulator.account_id),
            "password": emulator.token,
            "extra": extras,
        }
    )


def posts(emulator: DbtCloudEmulator, suffix: str) -> list[RecordedRequest]:
    """POST requests whose path ends with ``suffix`` (``"/run/"``, ``"/retry/"``, ``"/cancel/"``)."""
    return [r for r in emulator.requests() if r.method == "POST" and r.path.endswith(suffix)]


def run_gets(emulator: DbtCloudEmulator, run_id: int) -> list[RecordedRequest]:
    return [r for r in emulator.requests() if r.method == "GET" and r.path.endswith(f"/runs/{run_id}/")]


def wait_terminal(client: DbtCloudClient, run_id: int, timeout: float = 60.0) -> Run:
    """Poll until the run ends (for test setup); fails the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    run = client.get_run(run_id)
    while not run.is_terminal:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status.name} after {timeout}s"
        time.sleep(0.05)
        run = client.get_run(run_id)
    return run


def wait_status(client: DbtCloudClient, run_id: int, status: RunStatus, timeout: float = 60.0) -> Run:
    """Poll until the run reaches ``status``; fails the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    run = client.get_run(run_id)
    while run.status is not status:
        assert time.monotonic() < deadline, (
            f"run {run_id} still {run.status.name}, not {status.name}, after {timeout}s"
        )
        time.sleep(0.05)
        run = client.get_run(run_id)
    return run
