"""Helpers for talking to the dbt Cloud emulator from tests: a verifying client and a bounded run wait."""

from __future__ import annotations

import time
from typing import Any

import httpx

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


def make_client(emulator: DbtCloudEmulator, token: str | None = None) -> httpx.Client:
    """A client that verifies the emulator's certificate for real and sends the API token."""
    verify: Any = str(emulator.ca_cert_path) if emulator.ca_cert_path else False
    return httpx.Client(
        base_url=emulator.base_url,
        verify=verify,
        headers={"Authorization": f"Token {token or emulator.token}"},
        timeout=30,
    )


def wait_for_run(client: httpx.Client, account_id: int, run_id: int, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a run until it is complete (bounded by ``timeout``); returns the final run object."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v2/accounts/{account_id}/runs/{run_id}/").json()["data"]
        if run["is_complete"]:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not complete within {timeout}s")
