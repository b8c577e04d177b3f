"""The pytest plugin users enable with ``pytest_plugins = ["airflow_dbt_provider.testing.pytest_plugin"]``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_TEST = """
import httpx

def _client(emu):
    return httpx.Client(base_url=emu.base_url, verify=str(emu.ca_cert_path),
                        headers={"Authorization": f"Token {emu.token}"})

def test_first(dbt_cloud_emulator, dbt_cloud_emulator_session):
    assert dbt_cloud_emulator is dbt_cloud_emulator_session
    assert dbt_cloud_emulator.speed == 10
    with _client(dbt_cloud_emulator) as c:
        job = dbt_cloud_emulator.world.job_ids["success"]
        c.post(f"/api/v2/accounts/{dbt_cloud_emulator.account_id}/jobs/{job}/run/", json={"cause": "a"})
    dbt_cloud_emulator.set_speed(3)
    assert len(dbt_cloud_emulator.requests()) == 1

def test_second_starts_clean(dbt_cloud_emulator):
    assert dbt_cloud_emulator.requests() == []
    assert dbt_cloud_emulator.speed == 10
    with _client(dbt_cloud_emulator) as c:
        runs = c.get(f"/api/v2/accounts/{dbt_cloud_emulator.account_id}/runs/").json()["data"]
    assert runs == []
"""


def test_fixtures_reset_between_tests(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "airflow_dbt_provider.testing.pytest_plugin",
         "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
