"""The official provider's example DAG, with only its imports changed, runs green on the emulator.

``official_example/example_dbt_cloud.py`` is apache/airflow's
``providers/dbt/cloud/tests/system/dbt/cloud/example_dbt_cloud.py`` (Apache-2.0) with its provider
imports pointed at this package and its ``tests_common`` harness stubbed. The emulator is seeded
through its own JSON config (``official_example/world.json``) with the example's ids and names —
accounts 39151 and 106277, project 160645, job 48617 = ``my_dbt_project`` / ``prod`` /
``my_dbt_job`` — and the connection is the official provider's ``dbt`` connection as a user has
it (type ``dbt_cloud``, host ``host:port``, CA trusted through ``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.cloud_operators import posts

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

HERE = Path(__file__).parent / "official_example"

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.timeout(300, method="thread")]


@pytest.fixture
def example_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(config=HERE / "world.json", speed=20) as emulator:
        assert emulator.ca_cert_path is not None
        monkeypatch.setenv(
            "AIRFLOW_CONN_DBT",
            json.dumps(
                {
                    "conn_type": "dbt_cloud",
                    "host": urlsplit(emulator.base_url).netloc,
                    "login": "39151",
                    "password": emulator.token,
                }
            ),
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_cert_path))
        monkeypatch.setenv("SSL_CERT_FILE", str(emulator.ca_cert_path))
        monkeypatch.chdir(tmp_path)  # the artifact operator writes <run_id>_run_results.json here
        yield emulator


def _load_example() -> object:
    spec = importlib.util.spec_from_file_location("example_dbt_cloud", HERE / "example_dbt_cloud.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_official_example_dag_runs_green(example_world: DbtCloudEmulator, tmp_path: Path) -> None:
    example = _load_example()
    result = example.test_run()  # type: ignore[attr-defined]

    states = {ti.task_id: result.state(ti.task_id) for ti in result._tis.values()}
    assert states.pop("watcher") == "skipped", states
    assert set(states.values()) == {"success"}, (states, result.all_errors())
    assert len(states) == 10

    triggers = posts(example_world, "/jobs/48617/run/")
    assert len(triggers) == 3  # trigger_job_run1, 2 and 3 (found by name): one run each
    assert triggers[0].path == "/api/v2/accounts/39151/jobs/48617/run/"
    assert [t.body.get("threads_override") for t in triggers].count(8) == 1
    run_id = result.xcom("trigger_job_run1", "return_value")
    written = tmp_path / result.xcom("get_run_results_artifact", "return_value")
    assert written.name == f"{run_id}_run_results.json"
    assert json.loads(written.read_text())["results"]
    assert result.xcom("list_dbt_jobs", "return_value") == _job_ids(example_world, 106277)
    assert result.xcom("list_dbt_job_runs", "return_value") == []  # the example lists "job" 160645
    assert [r.status for r in example_world.requests() if r.status >= 400] == []


def _job_ids(emulator: DbtCloudEmulator, account_id: int) -> list[int]:
    import httpx

    with httpx.Client(verify=str(emulator.ca_cert_path)) as client:
        answer = client.get(
            f"{emulator.base_url}/api/v2/accounts/{account_id}/jobs/",
            headers={"Authorization": f"Token {emulator.token}"},
        )
    return [j["id"] for j in answer.json()["data"]]
