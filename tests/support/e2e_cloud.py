"""Helpers for the dbt Cloud end-to-end scenarios: the deployment's connection, request-log queries.

The scenarios judge the provider by two public records only: what the dbt Cloud emulator was
asked (its request log: which runs were triggered, retried, cancelled) and what Airflow reports
through its REST API. These helpers read both and wait on them patiently, with failure messages
that quote what was seen.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator, RecordedRequest
from support.airflow_api import AirflowApi
from support.airflow_deployment import AirflowDeployment

#: The connection the scenario DAGs use (``tests/e2e/dags/e2e_cloud_scenarios.py``).
CONN_ID = "dbt_cloud_e2e_scenarios"


def create_connection(api: AirflowApi, emulator: DbtCloudEmulator) -> None:
    """(Re)create the scenarios' connection through the REST API, as a user would in the UI.

    The deployment trusts the emulator's self-signed CA through the ``ca_bundle`` extra only.
    Client retries are quick so fault scenarios take seconds, not the production backoff.
    """
    api.delete_connection(CONN_ID)
    extra = {
        "ca_bundle": str(emulator.ca_cert_path),
        "timeout": 10,
        "retry_max_attempts": 3,
        "retry_backoff_base": 0.2,
        "retry_backoff_max": 1.0,
    }
    api.create_connection(
        {
            "connection_id": CONN_ID,
            "conn_type": "dbt_cloud_api",
            "host": emulator.base_url,
            "login": str(emulator.account_id),
            "password": emulator.token,
            "extra": json.dumps(extra),
        }
    )


def posts(emulator: DbtCloudEmulator, suffix: str) -> list[RecordedRequest]:
    """POSTs whose path ends with ``suffix`` (``/run/``, ``/retry/``, ``/cancel/``)."""
    return [r for r in emulator.requests() if r.method == "POST" and r.path.endswith(suffix)]


def trigger_calls(emulator: DbtCloudEmulator, dag_run_id: str | None = None) -> list[RecordedRequest]:
    """``POST jobs/{id}/run/`` calls, optionally only those whose cause names ``dag_run_id``."""
    calls = posts(emulator, "/run/")
    if dag_run_id is None:
        return calls
    return [r for r in calls if isinstance(r.body, dict) and dag_run_id in str(r.body.get("cause", ""))]


def cancel_calls(emulator: DbtCloudEmulator, run_id: int | None = None) -> list[RecordedRequest]:
    calls = posts(emulator, "/cancel/")
    return calls if run_id is None else [r for r in calls if r.path.endswith(f"/runs/{run_id}/cancel/")]


def run_polls(emulator: DbtCloudEmulator, run_id: int) -> list[RecordedRequest]:
    """Status reads of one run (``GET runs/{id}/``), faulted ones included (status 0 = reset)."""
    return [r for r in emulator.requests() if r.method == "GET" and r.path.endswith(f"/runs/{run_id}/")]


def summarize_requests(emulator: DbtCloudEmulator, last: int = 25) -> str:
    """The tail of the request log as ``METHOD path -> status`` lines, for failure messages."""
    return "\n".join(f"{r.method} {r.path} -> {r.status}" for r in emulator.requests()[-last:])


def wait_until(what: str, probe: Callable[[], Any], *, timeout: float, describe: Callable[[], str]) -> Any:
    """Poll ``probe`` (every 0.25 s) until it returns something truthy; fail quoting ``describe()``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}; last seen:\n{describe()}")
        time.sleep(0.25)


def run_status(emulator: DbtCloudEmulator, run_id: int) -> int:
    """The run's status code as the emulator's API reports it (1/2/3 in flight, 10/20/30 done)."""
    response = httpx.get(
        f"{emulator.base_url}/api/v2/accounts/{emulator.account_id}/runs/{run_id}/",
        headers={"Authorization": f"Token {emulator.token}"},
        verify=str(emulator.ca_cert_path),
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json()["data"]["status"])


def triggerer_job_id(ti: dict[str, Any]) -> int | None:
    """The id of the triggerer job running the task instance's trigger (``None`` when unassigned)."""
    job = ti.get("triggerer_job")
    return int(job["id"]) if isinstance(job, dict) and job.get("id") is not None else None


def busy_workers(deployment: AirflowDeployment) -> list[str]:
    """Titles of the LocalExecutor workers still running a workload (idle ones end in ``<idle>``).

    The LocalExecutor names each worker process after its workload while it runs it and resets
    the title to ``... <idle>`` only after it has queued the result for the scheduler.
    """
    titles = []
    for proc in deployment.component("scheduler").descendants():
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline()).strip()
            if title.startswith("airflow worker -- LocalExecutor") and not title.endswith("<idle>"):
                titles.append(title)
    return titles


def wait_for_idle_workers(deployment: AirflowDeployment, *, timeout: float = 180, settle: float = 5) -> None:
    """Wait until every LocalExecutor worker has reported its workload, plus ``settle`` seconds.

    Why: a task that deferred is ``deferred`` in the API before its worker has reported the
    workload to the scheduler. If the trigger fires and the task resumes first, Airflow 3.3.2's
    scheduler takes the late report of the deferring workload (same try number) as "state
    changed externally" and fails the resumed task (apache/airflow#72716, open; seen here with
    50 mapped tasks on two loaded cores). Scenarios let runs finish only after this.
    """
    wait_until(
        "the LocalExecutor workers to go idle",
        lambda: not busy_workers(deployment),
        timeout=timeout,
        describe=lambda: "\n".join(busy_workers(deployment)),
    )
    time.sleep(settle)
