"""Fixtures for the end-to-end suite: one real Airflow 3 deployment per session, on PostgreSQL.

The deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor) starts once and
every scenario runs in it: start-up costs ~30 s on two cores, so a fresh deployment per test
would not fit the suite's budget. Scenarios isolate themselves by DAG run, not by deployment.
The SQLite smoke deployment is module-scoped and runs first, so the two never compete for CPU.

When a test fails, the end of every component's log and of the newest task logs is attached to
its report (section "airflow deployment logs"): the assertion says what went wrong, the logs
say why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.airflow_api import AirflowApi
from support.airflow_deployment import AirflowDeployment
from support.postgres import PostgresServer

if TYPE_CHECKING:
    from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

E2E_DIR = Path(__file__).resolve().parent
E2E_DAGS = E2E_DIR / "dags"
EXAMPLE_DAGS = E2E_DIR.parent.parent / "example_dags"
#: The warehouse database behind connection ``e2e_pg_warehouse`` (on the session's PostgreSQL).
PG_WAREHOUSE_DB = "warehouse_e2e"
#: Test modules that start their own deployment; they run before the shared one starts.
OWN_DEPLOYMENT_MODULES = (
    "test_sqlite_smoke.py",
    "test_termination.py",
    "test_kill_on_defaults.py",
    "test_celery.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules with their own deployment before any test that uses the shared one."""

    def key(item: pytest.Item) -> int:
        in_e2e = item.path.parent == E2E_DIR
        return 0 if in_e2e and item.path.name in OWN_DEPLOYMENT_MODULES else 1

    e2e = [i for i in items if i.path.parent == E2E_DIR]
    if e2e:
        first = items.index(e2e[0])
        rest = [i for i in items if i.path.parent != E2E_DIR]
        items[:] = rest[:first] + sorted(e2e, key=key) + rest[first:]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    """Attach the deployments' log tails to a failed e2e test's report."""
    report = yield
    if isinstance(report, pytest.TestReport) and report.failed and report.when in ("setup", "call"):
        for deployment in AirflowDeployment.active():
            report.sections.append((f"airflow deployment logs ({deployment.name})", deployment.log_tails()))
    return report


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[DbtCloudEmulator]:
    """The dbt Cloud emulator (HTTPS, self-signed) the deployment's tasks and triggers talk to.

    Real-time speed: a cloud task must stay deferred long enough for a scenario to see it.
    """
    from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

    with DbtCloudEmulator(speed=1.0) as emulator:
        yield emulator


@pytest.fixture
def emulator(e2e_emulator: DbtCloudEmulator) -> DbtCloudEmulator:
    """The session emulator, back to its seeded world with an empty request log and no faults."""
    e2e_emulator.reset()
    e2e_emulator.set_speed(1.0)
    return e2e_emulator


@pytest.fixture(scope="session")
def airflow_deployment(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    """The shared deployment: PostgreSQL metadata DB, 16 parallel task slots, e2e + example DAGs.

    Connection ``e2e_pg_warehouse`` (an ``AIRFLOW_CONN_*`` variable, one of the ways users define
    connections) is a PostgreSQL warehouse database on the same server, for dbt profiles.
    """
    database = postgres_server.create_database("airflow_e2e")
    warehouse = postgres_server.create_database(PG_WAREHOUSE_DB)
    connection = {
        "conn_type": "postgres",
        "host": postgres_server.host,
        "port": postgres_server.port,
        "login": postgres_server.user,
        "password": postgres_server.password,
        "schema": warehouse,
        "extra": {"dbschema": "e2e_tg"},
    }
    deployment = AirflowDeployment(
        name="e2e-postgres",
        home=tmp_path_factory.mktemp("airflow-e2e-postgres"),
        dag_folders=[E2E_DAGS, EXAMPLE_DAGS],
        db_url=postgres_server.uri(database, scheme="postgresql+psycopg2"),
        parallelism=16,
        env={"AIRFLOW_CONN_E2E_PG_WAREHOUSE": json.dumps(connection)},
    )
    with deployment:
        yield deployment


@pytest.fixture
def pg_warehouse(
    postgres_server: PostgresServer, airflow_deployment: AirflowDeployment
) -> Callable[[str], object]:
    """Run one SQL statement in the warehouse database of connection ``e2e_pg_warehouse``."""
    return lambda sql: postgres_server.execute(sql, dbname=PG_WAREHOUSE_DB)


@pytest.fixture
def airflow(airflow_deployment: AirflowDeployment) -> AirflowApi:
    """REST API v2 client of the shared deployment, logged in as its admin user."""
    return airflow_deployment.api()


def run_smoke_dag(api: AirflowApi, release_file: Path, *, timeout: float = 180.0) -> str:
    """Drive ``e2e_smoke`` as a user would and check state, XCom, logs and the deferral.

    Shared by the PostgreSQL deployment and the SQLite smoke run; returns the run id.
    """
    api.wait_for_dag("e2e_smoke")
    conf = {"release_file": str(release_file), "requested_by": "e2e"}
    run_id = api.trigger_dag_run("e2e_smoke", conf=conf)

    # The triggerer holds the task until we create the file: it must be seen deferred first.
    api.wait_for_task_state("e2e_smoke", run_id, "wait_in_triggerer", {"deferred"}, timeout=timeout)
    release_file.touch()
    run = api.wait_for_dag_run("e2e_smoke", run_id, timeout=timeout)
    assert run["state"] == "success", api.describe_run("e2e_smoke", run_id)

    states = {ti["task_id"]: ti["state"] for ti in api.task_instances("e2e_smoke", run_id)}
    assert states == {"say_hello": "success", "wait_in_triggerer": "success"}
    assert api.xcom("e2e_smoke", run_id, "say_hello") == {"greeting": "hello", "conf": conf}
    resumed = api.xcom("e2e_smoke", run_id, "wait_in_triggerer")
    assert resumed["resumed_at"] > resumed["deferred_at"]

    hello_log = api.task_log_text("e2e_smoke", run_id, "say_hello")
    assert "e2e-smoke: hello from a LocalExecutor task" in hello_log
    deferred_log = api.task_log_text("e2e_smoke", run_id, "wait_in_triggerer")
    assert f"deferring until {release_file} exists" in deferred_log
    assert "resumed after the trigger fired" in deferred_log
    return run_id


@pytest.fixture
def smoke_dag() -> Callable[..., str]:
    """:func:`run_smoke_dag`, for tests (conftest functions are not importable)."""
    return run_smoke_dag
