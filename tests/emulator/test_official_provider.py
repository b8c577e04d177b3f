"""The official ``apache-airflow-providers-dbt-cloud`` client, unmodified, against the strict emulator.

Users test DAGs written for the official provider against our emulator, so it must accept what real
dbt Cloud accepts from that client — its ``DbtCloudHook`` sends ``"steps_override": null,
"schema_override": null`` on every trigger — while still answering strictly by the spec (every
answer below went through the strict emulator's response validation). The connection is the
official one: ``host`` is ``host:port`` (the hook always builds ``https://<host>/api/...``) and the
emulator's CA comes through ``REQUESTS_CA_BUNDLE`` (requests) and ``SSL_CERT_FILE`` (aiohttp).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

official_hook = pytest.importorskip("airflow.providers.dbt.cloud.hooks.dbt", reason="Python >= 3.11 only")

DbtCloudHook = official_hook.DbtCloudHook
DbtCloudJobRunStatus = official_hook.DbtCloudJobRunStatus
CONN_ID = "dbt_cloud_default"


@pytest.fixture
def official(emu: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch) -> DbtCloudEmulator:
    """The strict emulator, with the official connection and CA trust pointed at it."""
    assert emu.ca_cert_path is not None
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "dbt_cloud",
                "host": urlsplit(emu.base_url).netloc,  # "127.0.0.1:<port>", as the official hook wants
                "login": str(emu.account_id),
                "password": emu.token,
            }
        ),
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_cert_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(emu.ca_cert_path))
    return emu


def _refused(emu: DbtCloudEmulator) -> list[tuple[str, str, int, str]]:
    """Requests the emulator answered with a 4xx (there must be none: the client is a real one)."""
    return [
        (r.method, r.path, r.status, json.dumps(r.body)[:200])
        for r in emu.requests()
        if 400 <= r.status < 500
    ]


def _wait_terminal(hook: DbtCloudHook, run_id: int) -> int:
    deadline = time.monotonic() + 120
    status = hook.get_job_run_status(run_id)
    while not DbtCloudJobRunStatus.is_terminal(status):
        assert time.monotonic() < deadline, f"run {run_id} did not end"
        time.sleep(0.05)
        status = hook.get_job_run_status(run_id)
    return status


def test_official_hook_triggers_waits_lists_and_downloads(official: DbtCloudEmulator) -> None:
    hook = DbtCloudHook(CONN_ID)
    assert hook.test_connection()[0]
    job_id = official.world.job_ids["success"]

    response = hook.trigger_job_run(job_id=job_id, cause="official hook against the emulator")
    run = response.json()["data"]
    trigger = next(r for r in official.requests() if r.method == "POST" and r.path.endswith("/run/"))
    assert trigger.body == {
        "cause": "official hook against the emulator",
        "steps_override": None,
        "schema_override": None,
    }
    assert hook.wait_for_job_run_status(
        run["id"], expected_statuses=DbtCloudJobRunStatus.SUCCESS.value, check_interval=0.1, timeout=120
    )

    job_ids = [j["id"] for page in hook.list_jobs() for j in page.json()["data"]]
    assert set(official.world.job_ids.values()) <= set(job_ids)
    runs = [
        r
        for page in hook.list_job_runs(job_definition_id=job_id, include_related=["job"], order_by="-id")
        for r in page.json()["data"]
    ]
    assert [r["id"] for r in runs] == [run["id"]]
    assert runs[0]["job"]["name"] == official.world.job_names["success"]
    detail = hook.get_job_run(run["id"], include_related=["run_steps"]).json()["data"]
    assert detail["status"] == DbtCloudJobRunStatus.SUCCESS.value
    assert detail["run_steps"]

    artifacts = hook.list_job_run_artifacts(run["id"]).json()["data"]
    assert {"manifest.json", "run_results.json"} <= set(artifacts)
    run_results = hook.get_job_run_artifact(run["id"], path="run_results.json").json()
    assert run_results["metadata"]["dbt_schema_version"].endswith("run-results/v6.json")

    found = hook.get_job_by_name(
        project_name=official.world.project_name,
        environment_name=official.world.environment_name,
        job_name=official.world.job_names["success"],
    )
    assert found["id"] == job_id
    assert _refused(official) == []


def test_official_hook_sends_overrides_and_additional_run_config(official: DbtCloudEmulator) -> None:
    hook = DbtCloudHook(CONN_ID)
    run = hook.trigger_job_run(
        job_id=official.world.job_ids["success"],
        cause="overrides",
        steps_override=["dbt build -s orders"],
        additional_run_config={"threads_override": 8},
    ).json()["data"]
    assert _refused(official) == []
    trigger = hook.get_job_run(run["id"], include_related=["trigger"]).json()["data"]["trigger"]
    assert trigger["steps_override"] == ["dbt build -s orders"]
    assert trigger["threads_override"] == 8


def test_official_hook_cancels_a_run(official: DbtCloudEmulator) -> None:
    hook = DbtCloudHook(CONN_ID)
    run_id = hook.trigger_job_run(job_id=official.world.job_ids["long"], cause="to cancel").json()["data"][
        "id"
    ]
    hook.cancel_job_run(run_id)
    assert _wait_terminal(hook, run_id) == DbtCloudJobRunStatus.CANCELLED.value
    assert _refused(official) == []


_TRIGGERER = """
import asyncio, json, sys, time
from airflow.providers.dbt.cloud.triggers.dbt import DbtCloudRunJobTrigger

async def main(conn_id, run_ids):
    out = {}
    for run_id in run_ids:
        trigger = DbtCloudRunJobTrigger(
            conn_id=conn_id, run_id=run_id, end_time=time.time() + 120, poll_interval=0.1, account_id=None
        )
        out[run_id] = [event.payload async for event in trigger.run()]
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], [int(a) for a in sys.argv[2:]]))
"""


def test_official_deferrable_trigger_reports_success_and_failure(official: DbtCloudEmulator) -> None:
    """The official trigger polls over aiohttp, in a process of its own as in a triggerer: aiohttp
    builds its TLS context when imported, so ``SSL_CERT_FILE`` must be set before it starts."""
    hook = DbtCloudHook(CONN_ID)
    run_ids = [
        hook.trigger_job_run(job_id=official.world.job_ids[job], cause=f"trigger {job}").json()["data"]["id"]
        for job in ("success", "fail")
    ]
    done = subprocess.run(
        [sys.executable, "-c", _TRIGGERER, CONN_ID, *map(str, run_ids)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = json.loads(done.stdout.strip().splitlines()[-1])
    success, failure = (events[str(r)] for r in run_ids)
    assert [e["status"] for e in success] == ["success"], success
    assert [e["status"] for e in failure] == ["error"], failure
    assert failure[0]["message"] == f"Job run {run_ids[1]} has failed."
    assert _refused(official) == []
