"""The provider on a distributed deployment: CeleryExecutor, a Redis broker, two workers.

One :class:`~support.celery_deployment.CeleryDeployment` for the module (tests/e2e/celery_dags/):
PostgreSQL as metadata DB, Celery result backend *and* the dbt warehouse (a DuckDB file cannot be
shared by two machines), two ``airflow celery worker`` processes with their own homes, caches and
temporary directories, each also listening on its own queue. Tasks are routed by ``queue=`` and
every verdict about where a task ran comes from Airflow's REST API (each try's ``hostname``) and
from the files each worker's own directories hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support.airflow_api import AirflowApi
from support.celery_deployment import CeleryDeployment
from support.dbt_projects import TASK_GROUP_NODES
from support.e2e_cloud import (
    cancel_calls,
    create_connection,
    finish_runs,
    kill_deferred_task,
    kill_deferred_task_without_trigger_on_kill,
    run_id_of,
    run_polls,
    summarize_requests,
    trigger_calls,
)
from support.postgres import PostgresServer
from support.redis_server import RedisServer
from support.s3_server import Bucket, S3Server

from airflow_dbt_provider.artifacts import decode_artifact
from airflow_dbt_provider.compat import HAS_START_FROM_TRIGGER, HAS_TASK_STATE_STORE, HAS_TRIGGER_ON_KILL
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

pytestmark = pytest.mark.e2e

CELERY_DAGS = Path(__file__).resolve().parent / "celery_dags"
WAREHOUSE_DB = "celery_warehouse"
#: The emulator default world's job whose run stays in flight for 10 minutes at real-time speed.
LONG = 40003
JAFFLE_NODES = TASK_GROUP_NODES
#: ``celery_dbt_retry``'s ``artifacts_dir`` (tests/e2e/celery_dags/celery_dbt_retry.py): a bucket
#: on the loopback S3 server every worker reaches, and the prefix the DAG writes under.
ARTIFACTS_BUCKET, RETRY_ARTIFACTS = "adp-celery-e2e", "celery_dbt_retry/build"
#: The file ``retry_from_failure`` keeps its state in without a task state store (Airflow < 3.3).
RETRY_STATE_FILE = f"{RETRY_ARTIFACTS}/.dbt_retry_from_failure.json"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def artifacts_bucket() -> Iterator[Bucket]:
    """The object storage every machine reaches: moto's S3 server on loopback, one bucket."""
    with S3Server() as server:
        server.client().create_bucket(Bucket=ARTIFACTS_BUCKET)
        yield Bucket(server, ARTIFACTS_BUCKET)


@pytest.fixture(scope="module")
def celery_deployment(
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    artifacts_bucket: Bucket,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryDeployment]:
    metadata = postgres_server.create_database("airflow_e2e_celery")
    warehouse = postgres_server.create_database(WAREHOUSE_DB)
    connection = postgres_server.airflow_connection(warehouse)
    deployment = CeleryDeployment(
        name="e2e-celery",
        home=tmp_path_factory.mktemp("airflow-e2e-celery"),
        dag_folders=[CELERY_DAGS],
        db_url=postgres_server.uri(metadata, scheme="postgresql+psycopg2"),
        broker_url=redis_server.url(),
        result_backend=postgres_server.uri(metadata, scheme="db+postgresql"),
        # The warehouse and object-storage connections every machine has (as from a secrets backend).
        env={
            "AIRFLOW_CONN_CELERY_WAREHOUSE": json.dumps(connection),
            **dict([artifacts_bucket.connection_env()]),
        },
        # ADP_E2E_CELERY_DEFAULTS=1: Airflow's own heartbeats and intervals (see docs/e2e.md).
        defaults=os.environ.get("ADP_E2E_CELERY_DEFAULTS") == "1",
    )
    with deployment:
        yield deployment


@pytest.fixture
def airflow(celery_deployment: CeleryDeployment) -> AirflowApi:
    return celery_deployment.api()


def _tries(api: AirflowApi, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every try of a task instance (``TaskInstanceHistory`` and the current one), oldest first."""
    path = (
        f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/{quote(task_id)}/tries"
    )
    return sorted(api.get(path)["task_instances"], key=lambda ti: ti["try_number"])


def _run(api: AirflowApi, dag_id: str, *, timeout: float = 420, **conf: object) -> str:
    api.wait_for_dag(dag_id, timeout=240, grace=200)
    run_id = api.trigger_dag_run(dag_id, conf=conf or None)
    run = api.wait_for_dag_run(dag_id, run_id, timeout=timeout)
    assert run["state"] == "success", api.describe_run(dag_id, run_id)
    return run_id


# --- dbt Core ----------------------------------------------------------------------------------


def test_local_dbt_dag_runs_across_both_workers(
    celery_deployment: CeleryDeployment, airflow: AirflowApi, postgres_server: PostgresServer
) -> None:
    dag_id = "celery_dbt_local"
    run_id = _run(airflow, dag_id)
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(dag_id, run_id)}
    ran_on = {task: (ti["state"], ti["queue"], ti["hostname"]) for task, ti in tis.items()}
    assert ran_on == {
        "seed": ("success", "worker_a", "worker_a"),
        "build": ("success", "worker_b", "worker_b"),
        "docs": ("success", "worker_a", "worker_a"),
    }
    summary = airflow.xcom(dag_id, run_id, "build")
    assert (summary["command"], summary["success"], summary["failed_nodes"]) == ("build", True, [])
    results = decode_artifact(airflow.xcom(dag_id, run_id, "build", key="run_results"))
    built = {r["unique_id"].split(".")[-1] for r in results["results"]}
    assert {"customers", "orders", "stg_orders"} <= built
    # The warehouse every machine reaches holds what the two workers built.
    assert postgres_server.execute("select count(*) from local_dag.customers", WAREHOUSE_DB)[0][0] > 0

    # Each machine kept its own files: build's artifacts only on worker_b, docs' only on worker_a,
    # and each worker parsed with a partial-parse cache of its own.
    artifacts = Path("dbt-artifacts") / "jaffle_shop" / run_id
    homes = {name: w.airflow_home for name, w in celery_deployment.workers.items()}
    assert (homes["worker_b"] / artifacts / "build" / "run_results.json").is_file()
    assert not (homes["worker_a"] / artifacts / "build").exists()
    assert (homes["worker_a"] / artifacts / "docs" / "catalog.json").is_file()
    assert not (homes["worker_b"] / artifacts / "docs").exists()
    for home in homes.values():
        assert list((home / ".dbt-provider-cache").rglob("partial_parse.msgpack")), home


def test_task_group_single_build_spans_both_workers(
    celery_deployment: CeleryDeployment, airflow: AirflowApi
) -> None:
    dag_id = "celery_dbt_task_group"
    run_id = _run(airflow, dag_id, timeout=600)
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(dag_id, run_id)}
    assert {t: ti["state"] for t, ti in tis.items()} == {
        **{f"jaffle_shop.{n}": "success" for n in JAFFLE_NODES},
        "jaffle_shop.dbt_build": "success",
        "jaffle_shop.end": "success",
    }
    # Each task ran where its queue sent it: the producer on worker_b, node tasks on both — or, on
    # Airflow >= 3.3 (start_from_trigger), node tasks on no worker: started and ended in the triggerer.
    assert tis["jaffle_shop.dbt_build"]["hostname"] == "worker_b"
    assert tis["jaffle_shop.end"]["hostname"] == "worker_a"
    node_tis = [tis[f"jaffle_shop.{n}"] for n in JAFFLE_NODES]
    if HAS_START_FROM_TRIGGER:
        assert all(not ti["hostname"] and ti["queued_when"] is None for ti in node_tis), node_tis
    else:
        for ti in node_tis:
            assert ti["hostname"] == ti["queue"], (ti["task_id"], ti["queue"], ti["hostname"])
        assert {ti["hostname"] for ti in node_tis} == {"worker_a", "worker_b"}
    # Every node task ends with the record the producer published from worker_b.
    for name in JAFFLE_NODES:
        record = airflow.xcom(dag_id, run_id, f"jaffle_shop.{name}")
        assert (record["source"], record["status"]) == ("jaffle_shop.dbt_build", "success"), (name, record)
    ended_in_triggerer = [
        n
        for n in JAFFLE_NODES
        if "ending the task in the triggerer" in airflow.task_log_text(dag_id, run_id, f"jaffle_shop.{n}")
    ]
    assert ended_in_triggerer, "no node task waited in the triggerer while the producer was building"
    # Every worker rendered the group from a manifest it parsed and cached itself (on >= 3.3 worker_a
    # for the end task, which emitted one Asset event per relation of worker_b's build).
    events = airflow.asset_events(source_dag_id=dag_id, source_run_id=run_id)
    assert {e["source_task_id"] for e in events} == {"jaffle_shop.end"}, events
    assert len(events) == len([n for n in JAFFLE_NODES if not n.startswith("relationships_")]), events
    for name, worker in celery_deployment.workers.items():
        cache = worker.airflow_home / ".dbt-provider-cache" / "task-groups" / "manifests"
        assert list(cache.glob("*.json")), f"{name} has no rendered manifest of its own in {cache}"


def test_retry_from_failure_retries_on_the_other_worker_with_only_what_failed(
    celery_deployment: CeleryDeployment,
    airflow: AirflowApi,
    postgres_server: PostgresServer,
    artifacts_bucket: Bucket,
) -> None:
    """The retry lands on the machine without try 1's files and runs only what failed.

    The state crosses machines through the task state store (Airflow 3.3) or, before 3.3, through
    the ``artifacts_dir`` on object storage (a state file next to the uploaded artifacts).
    """
    dag_id, task_id = "celery_dbt_retry", "build"
    postgres_server.execute(
        "drop schema if exists retry_ctl cascade; create schema retry_ctl; "
        "create sequence retry_ctl.attempts",
        WAREHOUSE_DB,
    )
    airflow.wait_for_dag(dag_id, timeout=240, grace=200)
    celery_deployment.add_consumer("worker_a", "retry_pool")
    try:
        run_id = airflow.trigger_dag_run(dag_id)
        first = airflow.wait_for_task_state(dag_id, run_id, task_id, ["running"], timeout=240)
        assert (first["try_number"], first["hostname"]) == (1, "worker_a")
        # Try 1 waits at the project's gate: drain worker_a of the queue, hand it to worker_b,
        # then open the gate. Try 1 fails; its retry can only go to worker_b.
        celery_deployment.cancel_consumer("worker_a", "retry_pool")
        celery_deployment.add_consumer("worker_b", "retry_pool")
        postgres_server.execute("create table retry_ctl.gate ()", WAREHOUSE_DB)
        run = airflow.wait_for_dag_run(dag_id, run_id, timeout=420)
    finally:
        postgres_server.execute("create table if not exists retry_ctl.gate ()", WAREHOUSE_DB)
        for worker in celery_deployment.workers:
            celery_deployment.cancel_consumer(worker, "retry_pool")
    assert run["state"] == "success", airflow.describe_run(dag_id, run_id)

    tries = [(t["try_number"], t["state"], t["hostname"]) for t in _tries(airflow, dag_id, run_id, task_id)]
    assert tries == [(1, "failed", "worker_a"), (2, "success", "worker_b")]
    kept_in = (
        "the task state store"
        if HAS_TASK_STATE_STORE
        else f"artifacts_dir {artifacts_bucket.url(RETRY_ARTIFACTS)}"
    )
    first_log = airflow.task_log_text(dag_id, run_id, task_id, 1)
    assert f"Kept 2 failed/skipped node(s) in {kept_in} for a retry" in first_log, first_log[-3000:]
    retry_log = airflow.task_log_text(dag_id, run_id, task_id, 2)
    assert "Try 2: dbt retry runs only the 2 node(s) that failed or were skipped before" in retry_log, (
        retry_log[-3000:]
    )
    # The retry on worker_b ran exactly the failed model and the one it had skipped.
    results = decode_artifact(airflow.xcom(dag_id, run_id, task_id, key="run_results"))
    assert {r["unique_id"]: r["status"] for r in results["results"]} == {
        "model.celery_retry.flaky": "success",
        "model.celery_retry.downstream": "success",
    }
    assert postgres_server.execute("select last_value from retry_ctl.attempts", WAREHOUSE_DB) == [(2,)]

    # Both tries uploaded their artifacts to the shared artifacts_dir; the last word is the retry's.
    uploaded = artifacts_bucket.objects(RETRY_ARTIFACTS)
    assert f"{RETRY_ARTIFACTS}/dbt.log" in uploaded, sorted(uploaded)
    last = json.loads(uploaded[f"{RETRY_ARTIFACTS}/run_results.json"])
    assert sorted(r["unique_id"] for r in last["results"]) == [
        "model.celery_retry.downstream",
        "model.celery_retry.flaky",
    ]
    # Without a task state store the state went through object storage: written by try 1 on
    # worker_a, read by try 2 on worker_b, and forgotten once the retry succeeded.
    state_calls = [r.method for r in artifacts_bucket.server.requests() if r.path.endswith(RETRY_STATE_FILE)]
    assert RETRY_STATE_FILE not in uploaded
    if HAS_TASK_STATE_STORE:
        assert state_calls == [], state_calls
    else:
        assert {"PUT", "GET"} <= set(state_calls), state_calls
        assert state_calls.index("PUT") < state_calls.index("GET"), state_calls


# --- dbt Cloud ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud_connection(celery_deployment: CeleryDeployment, e2e_emulator: DbtCloudEmulator) -> Iterator[None]:
    api = celery_deployment.api()
    create_connection(api, e2e_emulator)
    yield
    api.delete_connection("dbt_cloud_e2e_scenarios")


@pytest.fixture
def cloud(cloud_connection: None, emulator: DbtCloudEmulator) -> DbtCloudEmulator:
    return emulator


def test_deferred_cloud_run_and_sensor_on_both_workers(
    celery_deployment: CeleryDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator
) -> None:
    dag_id = "celery_cloud_operator_and_sensor"
    airflow.wait_for_dag(dag_id, timeout=240, grace=200)
    run_id = airflow.trigger_dag_run(dag_id, conf={"job_id": LONG})
    for task_id in ("run_job", "wait_for_run"):
        airflow.wait_for_task_state(dag_id, run_id, task_id, {"deferred"}, timeout=240)
    job_run = run_id_of(airflow, dag_id, run_id)
    airflow.wait_for(
        "the triggerer to poll the deferred run",
        lambda: len(run_polls(cloud, job_run)) >= 2 or None,
        timeout=120,
        describe=lambda: summarize_requests(cloud),
    )
    finish_runs(airflow, cloud, dag_id, run_id, deployment=celery_deployment)

    tis = {ti["task_id"]: ti for ti in airflow.task_instances(dag_id, run_id)}
    assert {t: (ti["state"], ti["try_number"], ti["hostname"]) for t, ti in tis.items()} == {
        "run_job": ("success", 1, "worker_a"),
        "start_job": ("success", 1, "worker_a"),
        "wait_for_run": ("success", 1, "worker_b"),
    }
    assert len(trigger_calls(cloud, run_id)) == 2, summarize_requests(cloud)
    assert cancel_calls(cloud) == []
    assert airflow.xcom(dag_id, run_id, "run_job") == job_run
    watched = run_id_of(airflow, dag_id, run_id, "start_job")
    assert airflow.xcom(dag_id, run_id, "wait_for_run") == watched
    # The deferred task resumed on a worker again (worker_a, its queue's) and finished there.
    log = airflow.task_log_text(dag_id, run_id, "run_job")
    assert "Pausing task as DEFERRED" in log
    for task_id in tis:
        assert cloud.token not in airflow.task_log_text(dag_id, run_id, task_id), task_id


@pytest.mark.parametrize("action", ["mark_failed", "clear"])
def test_kill_while_deferred_cancels_the_run(
    celery_deployment: CeleryDeployment, airflow: AirflowApi, cloud: DbtCloudEmulator, action: str
) -> None:
    """Airflow 3.3: the trigger's on_kill cancels the run. Before 3.3 (no trigger on_kill) the
    documented degradation instead: the task log says so once, and the run is left in flight."""
    dag_id = "celery_cloud_deferred_job"
    if HAS_TRIGGER_ON_KILL:
        kill_deferred_task(celery_deployment, cloud, action, dag_id=dag_id)
    else:
        kill_deferred_task_without_trigger_on_kill(celery_deployment, cloud, action, dag_id=dag_id)
    newest = airflow.dag_runs(dag_id)[-1]
    hosts = {t["hostname"] for t in _tries(airflow, dag_id, newest["dag_run_id"], "run_job")}
    assert hosts == {"worker_b"}
