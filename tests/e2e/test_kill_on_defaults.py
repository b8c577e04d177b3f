"""Killing a deferred dbt Cloud task cancels its run on a deployment with Airflow's defaults.

The shared deployment is tuned for speed (PostgreSQL, 2 s heartbeats, short intervals); a new
user's is not. This one runs on SQLite with LocalExecutor and only the settings a deployment
cannot do without (:data:`support.airflow_deployment.DEFAULTS_SETTINGS`), so default heartbeats
and sync loops decide when the triggerer runs ``on_kill`` — the path on which the cancel was lost
before (issue 13). The same scenario runs on the PostgreSQL deployment in test_cloud_scenarios.py.
``ADP_KILL_REPEAT=5`` repeats each action five times in a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.airflow_deployment import DEFAULTS_SETTINGS, AirflowDeployment
from support.e2e_cloud import KILL_ACTIONS, KILL_REPEAT, create_connection, kill_deferred_task

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = pytest.mark.e2e

E2E_DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture(scope="module")
def defaults_deployment(
    tmp_path_factory: pytest.TempPathFactory, e2e_emulator: DbtCloudEmulator
) -> Iterator[AirflowDeployment]:
    deployment = AirflowDeployment(
        name="e2e-defaults",
        home=tmp_path_factory.mktemp("airflow-e2e-defaults"),
        dag_folders=[E2E_DAGS],
        defaults=True,
    )
    with deployment:
        create_connection(deployment.api(), e2e_emulator)
        yield deployment


def test_defaults_deployment_sets_only_what_it_must(defaults_deployment: AirflowDeployment) -> None:
    airflow_settings = {k for k in defaults_deployment.environment() if k.startswith("AIRFLOW")}
    assert airflow_settings == DEFAULTS_SETTINGS
    assert defaults_deployment.backend == "sqlite"


@pytest.mark.parametrize("action", KILL_ACTIONS)
def test_kill_while_deferred_cancels_the_run_on_defaults(
    defaults_deployment: AirflowDeployment, emulator: DbtCloudEmulator, action: str
) -> None:
    for _ in range(KILL_REPEAT):
        kill_deferred_task(defaults_deployment, emulator, action)
