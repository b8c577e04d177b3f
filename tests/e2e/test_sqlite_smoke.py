"""The same deployment on SQLite, Airflow's embedded default: a short smoke run.

PostgreSQL is what production runs and where the scenarios run; SQLite is what a user gets from
``airflow standalone`` or ``make demo``, so it must at least run a DAG, push an XCom, serve logs
and hand a deferred task to the triggerer and back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.airflow_deployment import AirflowDeployment

pytestmark = pytest.mark.e2e

E2E_DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture(scope="module")
def sqlite_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    deployment = AirflowDeployment(
        name="e2e-sqlite",
        home=tmp_path_factory.mktemp("airflow-e2e-sqlite"),
        dag_folders=[E2E_DAGS],
        parallelism=4,
    )
    with deployment:
        yield deployment


def test_sqlite_deployment_runs_and_defers(
    sqlite_deployment: AirflowDeployment, smoke_dag: Callable[..., str], tmp_path: Path
) -> None:
    assert sqlite_deployment.backend == "sqlite"
    health = sqlite_deployment.health()
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    smoke_dag(sqlite_deployment.api(), tmp_path / "release")
