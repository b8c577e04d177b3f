"""The DbtTaskGroup example DAG (``single_build`` on DuckDB) on a real deployment.

The scheduler runs the producer and the node tasks side by side on LocalExecutor: node tasks
wait in the real triggerer on the shared-poll trigger (on Airflow >= 3.3 they also start there)
and the producer's success records end them there, read back through the REST API.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.airflow_api import AirflowApi
from support.dbt_projects import TASK_GROUP_NODES
from support.e2e_cloud import task_processes, wait_until

from airflow_dbt_provider.artifacts import decode_artifact
from airflow_dbt_provider.compat import HAS_START_FROM_TRIGGER

pytestmark = pytest.mark.e2e

DAG_ID = "dbt_task_group_duckdb"
NODES = TASK_GROUP_NODES


def test_single_build_group_runs_green_with_deferred_node_tasks(airflow: AirflowApi) -> None:
    # A cold first parse (dbt import, packages, parse) can outlast dagbag_import_timeout on a loaded
    # machine; dbt finishes in the background and the DAG appears at the file's next parse.
    airflow.wait_for_dag(DAG_ID, timeout=420, grace=400)
    run_id = airflow.trigger_dag_run(DAG_ID)
    try:
        run = airflow.wait_for_dag_run(DAG_ID, run_id, timeout=600)
    finally:
        airflow.set_paused(DAG_ID, True)
    assert run["state"] == "success", airflow.describe_run(DAG_ID, run_id)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    assert states == {
        **{f"jaffle_shop.{n}": "success" for n in NODES},
        "jaffle_shop.dbt_build": "success",
        "jaffle_shop.end": "success",
    }
    # Node tasks waited in the triggerer, and there the producer's success records ended them:
    # the trigger's own line is in the task's log (Airflow serves the triggerer's part with it).
    logs = {n: airflow.task_log_text(DAG_ID, run_id, f"jaffle_shop.{n}") for n in NODES}
    in_triggerer = {n for n, log in logs.items() if "ending the task in the triggerer" in log}
    assert in_triggerer, "no node task ended in the triggerer"
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, run_id)}
    if HAS_START_FROM_TRIGGER:
        # Airflow >= 3.3: they also started there (the scheduler deferred them itself), so none
        # took a worker slot: never queued to the executor, no worker log at all.
        assert in_triggerer == set(NODES), sorted(set(NODES) - in_triggerer)
        for name in NODES:
            ti = tis[f"jaffle_shop.{name}"]
            assert ti["queued_when"] is None, (name, ti)
            assert "Pausing task as DEFERRED" not in logs[name], name
    for name in NODES:
        record = airflow.xcom(DAG_ID, run_id, f"jaffle_shop.{name}")
        assert record["source"] == "jaffle_shop.dbt_build", (name, record)
        assert record["status"] == "success"
    # One Asset event per relation, all from <group>.end: the producer built every node, and a node
    # task ending from its record (in the triggerer or not) records none.
    events = airflow.asset_events(source_dag_id=DAG_ID, source_run_id=run_id)
    sources = sorted((e["uri"].rsplit("/", 1)[-1], e["source_task_id"]) for e in events)
    relations = sorted(n for n in NODES if not n.startswith("relationships_"))
    assert sources == [(n, "jaffle_shop.end") for n in relations], sources


KILL_DAG = "e2e_dbt_task_group_kill"


def test_killed_producer_fails_unfinished_nodes_and_clearing_builds_only_them(
    airflow: AirflowApi, airflow_deployment: Any
) -> None:
    flag = Path(airflow_deployment.home) / "e2e_tg_kill" / "slow.flag"
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    airflow.wait_for_dag(KILL_DAG, timeout=420, grace=400)
    run_id = airflow.trigger_dag_run(KILL_DAG)
    try:
        # dbt is inside `slow` (waiting on the flag) once every other node has its record.
        airflow.wait_for_task_state(KILL_DAG, run_id, "jaffle.customers", ["success"], timeout=420)
        airflow.wait_for_task_state(KILL_DAG, run_id, "jaffle.slow", ["deferred"], timeout=120)
        airflow.set_task_state(KILL_DAG, run_id, "jaffle.dbt_build", "failed")  # the supervisor kills it
        slow = airflow.wait_for_task_state(KILL_DAG, run_id, "jaffle.slow", ["failed"], timeout=180)
        log = airflow.task_log_text(KILL_DAG, run_id, "jaffle.slow", slow["try_number"])
        assert "jaffle.dbt_build ended (failed) before dbt finished model.jaffle_shop.slow" in log
        states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(KILL_DAG, run_id)}
        finished = {t for t, s in states.items() if s == "success"}
        assert {"jaffle.stg_customers", "jaffle.orders", "jaffle.customers", "jaffle.end"} <= finished, states
        # Clear only once the scheduler has settled the run (failed): a clear racing the scheduler's
        # own end-of-run decision can leave the run failed with the cleared task never scheduled.
        airflow.wait_for_dag_run(KILL_DAG, run_id, states=["failed"], timeout=180)
        tries_before = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(KILL_DAG, run_id)}
        # The API marked the producer failed; its supervisor kills the process only at its next
        # heartbeat. Until then dbt is still inside `slow`, and removing the flag would let the
        # producer finish the build it was meant to lose (CI run of 2026-12-01 23:16).
        producer = next(
            ti for ti in airflow.task_instances(KILL_DAG, run_id) if ti["task_id"] == "jaffle.dbt_build"
        )
        wait_until(
            "the killed producer's process to end",
            lambda: not task_processes(producer["id"]),
            timeout=120,
            describe=lambda: "\n".join(task_processes(producer["id"])),
        )
        # Fix the cause, clear only the failed node: it builds itself; nothing else runs again.
        flag.unlink()
        airflow.request(
            "POST",
            f"/api/v2/dags/{KILL_DAG}/clearTaskInstances",
            json_body={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": ["jaffle.slow"],
                "only_failed": True,
            },
        )
        run = airflow.wait_for_dag_run(KILL_DAG, run_id, states=["success"], timeout=300)
    finally:
        flag.unlink(missing_ok=True)
        airflow.set_paused(KILL_DAG, True)
    assert run["state"] == "success"
    tries_after = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(KILL_DAG, run_id)}
    assert tries_after == {**tries_before, "jaffle.slow": tries_before["jaffle.slow"] + 1}
    rebuilt = airflow.task_log_text(KILL_DAG, run_id, "jaffle.slow", tries_after["jaffle.slow"])
    assert "building it here" in rebuilt, rebuilt[-6000:]
    assert airflow.xcom(KILL_DAG, run_id, "jaffle.slow")["nodes"] == 1
    # Assets: the nodes the killed producer had finished from <group>.end, `slow` from its own task.
    events = airflow.asset_events(source_dag_id=KILL_DAG, source_run_id=run_id)
    sources = {e["uri"].rsplit("/", 1)[-1]: e["source_task_id"] for e in events}
    assert len(events) == len(sources), events  # one event per relation
    assert sources["slow"] == "jaffle.slow"
    assert sources["customers"] == "jaffle.end"


PG_DAG = "e2e_dbt_task_group_pg"
PG_NODES = {*NODES, "gated"}
GATE_TEST = "test.jaffle_shop.accepted_values_gated_state__open"


def _run_results(airflow: AirflowApi, run_id: str, task_id: str) -> dict[str, str]:
    """``{unique_id: status}`` from the ``run_results.json`` the task's latest try pushed (a test's
    unique id without dbt's hash suffix)."""
    artifact = decode_artifact(airflow.xcom(PG_DAG, run_id, task_id, key="run_results"))
    return {".".join(r["unique_id"].split(".")[:3]): r["status"] for r in artifact["results"]}


def test_per_node_group_on_postgres_fails_one_node_and_clearing_it_rebuilds_only_that_node(
    airflow: AirflowApi, pg_warehouse: Callable[[str], object]
) -> None:
    # dbt's `create schema if not exists` races between parallel first builds in PostgreSQL
    # (duplicate key in pg_namespace): the schemas exist before the run, as a platform team has them.
    for schema in ("e2e_tg", "e2e_tg_raw", "e2e_tg_control"):
        pg_warehouse(f"drop schema if exists {schema} cascade")
        pg_warehouse(f"create schema {schema}")
    pg_warehouse("create table e2e_tg_control.gate (state text)")
    pg_warehouse("insert into e2e_tg_control.gate values ('closed')")
    airflow.wait_for_dag(PG_DAG, timeout=420, grace=400)
    run_id = airflow.trigger_dag_run(PG_DAG)
    try:
        airflow.wait_for_dag_run(PG_DAG, run_id, states=["failed"], timeout=420)
        tis = {ti["task_id"]: ti for ti in airflow.task_instances(PG_DAG, run_id)}
        states = {task: ti["state"] for task, ti in tis.items()}
        assert states == {
            **{f"jaffle.{n}": "success" for n in NODES},
            "jaffle.gated": "failed",
        }, airflow.describe_run(PG_DAG, run_id)
        assert _run_results(airflow, run_id, "jaffle.gated") == {
            "model.jaffle_shop.gated": "success",
            GATE_TEST: "fail",
        }
        # Node tasks ran side by side: some two of them were running at the same moment.
        spans = sorted((ti["start_date"], ti["end_date"]) for ti in tis.values())
        assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans
        tries_before = {task: ti["try_number"] for task, ti in tis.items()}
        built_before = {task: _run_results(airflow, run_id, task) for task in tis}

        # Fix the data, clear the failed node through the REST API while the scheduler runs.
        pg_warehouse("update e2e_tg_control.gate set state = 'open'")
        airflow.request(
            "POST",
            f"/api/v2/dags/{PG_DAG}/clearTaskInstances",
            json_body={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": ["jaffle.gated"],
                "only_failed": True,
            },
        )
        run = airflow.wait_for_dag_run(PG_DAG, run_id, states=["success"], timeout=300)
    finally:
        airflow.set_paused(PG_DAG, True)
    assert run["state"] == "success"
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(PG_DAG, run_id)}
    assert {t: ti["try_number"] for t, ti in tis.items()} == {
        **tries_before,
        "jaffle.gated": tries_before["jaffle.gated"] + 1,
    }
    # dbt's own record: the new try built the model and its test, and nothing else ran again.
    assert _run_results(airflow, run_id, "jaffle.gated") == {
        "model.jaffle_shop.gated": "success",
        GATE_TEST: "pass",
    }
    assert {t: _run_results(airflow, run_id, t) for t in tis if t != "jaffle.gated"} == {
        t: built for t, built in built_before.items() if t != "jaffle.gated"
    }
    # Each seed, model and snapshot was built by exactly one task, its own.
    built = [uid for t in tis for uid in _run_results(airflow, run_id, t) if not uid.startswith("test.")]
    assert sorted(uid.rsplit(".", 1)[-1] for uid in built) == sorted(n for n in PG_NODES if "__" not in n)
    assert pg_warehouse("select count(*) from e2e_tg.customers") == [(10,)]
