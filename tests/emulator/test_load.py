"""1,000 concurrent keep-alive clients polling a run: every one is answered, none refused."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

CLIENTS = 1000
POLLS = 3
LOAD_CLIENT = Path(__file__).resolve().parents[1] / "support" / "emulator_load_client.py"


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    """The server holds one socket per client: make sure the soft fd limit allows 1,000 and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if min(wanted, resource.getrlimit(resource.RLIMIT_NOFILE)[0]) < CLIENTS + 200:
        pytest.fail(f"need {CLIENTS + 200} file descriptors, the hard limit is {hard}; raise `ulimit -Hn`")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("enough_file_descriptors")
def test_thousand_concurrent_clients_polling_a_run() -> None:
    with DbtCloudEmulator(speed=1) as emu:
        a = emu.account_id
        run = httpx.post(
            f"{emu.base_url}/api/v2/accounts/{a}/jobs/{emu.world.job_ids['long']}/run/",
            json={"cause": "load"},
            headers={"Authorization": f"Token {emu.token}"},
            verify=str(emu.ca_cert_path),
        ).json()["data"]
        path = f"/api/v2/accounts/{a}/runs/{run['id']}/"
        result = subprocess.run(
            [sys.executable, str(LOAD_CLIENT), emu.base_url, emu.token, path, str(CLIENTS), str(POLLS),
             str(emu.ca_cert_path)],
            capture_output=True, text=True, timeout=150, env={**os.environ}, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        print("load:", report)  # shown with -s; BENCHMARKS can quote it
        assert report["failures"] == {}
        assert report["connected"] == CLIENTS
        assert report["statuses"] == {"200": CLIENTS * POLLS}
        assert report["bad_bodies"] == 0
        polls = [r for r in emu.requests() if r.path == path]
        assert len(polls) == CLIENTS * POLLS
