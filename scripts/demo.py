"""`make demo`: run the example DAGs for real on Airflow's defaults, kill a deferred run, summarise.

Everything stays under ``.demo/`` in the repository: a real Airflow deployment (api-server,
scheduler, dag-processor, triggerer, LocalExecutor) in its own ``AIRFLOW_HOME`` on a SQLite
metadata DB, the DuckDB warehouse file, downloaded dbt Cloud artifacts. dbt Cloud is the bundled
emulator, served over HTTPS on loopback from this process. The deployment is the one the
end-to-end tests use (``tests/support/airflow_deployment.py``). When the DAGs are done it prints
where to open the UI and stops everything, unless ``DEMO_KEEP_RUNNING=1`` (``make demo KEEP=1``)
asks it to stay up until Ctrl-C. Whatever ends it - the end, an error, SIGINT, SIGTERM or SIGHUP
(``kill``, a supervisor, a closed terminal) - it stops every process it started, and its last line
says what it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support import process_guard  # noqa: E402
from support.airflow_deployment import AirflowDeployment  # noqa: E402

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator  # noqa: E402

DEMO = REPO / ".demo"
DEMO_DAGS = REPO / "scripts" / "demo_dags"
#: dbt Cloud's status of a cancelled run.
CANCELLED = 30
#: How long the kill may take to reach dbt Cloud ([triggerer] on_kill_timeout is 30 s by default).
CANCEL_WITHIN_S = 60.0


def _connection(emulator: DbtCloudEmulator) -> str:
    return json.dumps(
        {
            "conn_type": "dbt_cloud_api",
            "host": emulator.base_url,
            "login": str(emulator.account_id),
            "password": emulator.token,
            "extra": {"ca_bundle": str(emulator.ca_cert_path)},
        }
    )


def _run_dags(deployment: AirflowDeployment) -> dict[str, tuple[str, float, dict[str, str]]]:
    """Run the example DAGs as a user would and return ``dag_id -> (state, seconds, task states)``."""
    api = deployment.api()
    for dag_id in ("dbt_local_duckdb", "dbt_cloud_job", "dbt_task_group_duckdb"):
        api.wait_for_dag(dag_id)
    started = time.monotonic()
    # dbt_local_duckdb is @daily with catchup off: unpausing creates one scheduled run (its `ds`
    # feeds a dbt var). dbt_cloud_job has no schedule: trigger it.
    api.set_paused("dbt_local_duckdb", False)
    local_run = api.wait_for(
        "the scheduled run", lambda: api.dag_runs("dbt_local_duckdb") or None, timeout=180
    )[0]
    runs = {
        "dbt_local_duckdb": local_run["dag_run_id"],
        "dbt_cloud_job": api.trigger_dag_run("dbt_cloud_job"),
        "dbt_task_group_duckdb": api.trigger_dag_run("dbt_task_group_duckdb"),
    }
    results: dict[str, tuple[str, float, dict[str, str]]] = {}
    for dag_id, run_id in runs.items():
        run = api.wait_for_dag_run(dag_id, run_id, timeout=900)
        states = {ti["task_id"]: str(ti["state"]) for ti in api.task_instances(dag_id, run_id)}
        results[dag_id] = (str(run["state"]), time.monotonic() - started, states)
        api.set_paused(dag_id, True)
    return results


def _kill_while_deferred(deployment: AirflowDeployment, emulator: DbtCloudEmulator) -> tuple[bool, str]:
    """Mark a deferred dbt Cloud task failed; ``(True, ...)`` only if dbt Cloud shows its run cancelled."""
    api = deployment.api()
    dag_id = "dbt_cloud_kill_demo"
    api.wait_for_dag(dag_id)
    run_id = api.trigger_dag_run(dag_id, conf={"job_id": emulator.world.job_ids["long"]})
    api.wait_for_task_state(dag_id, run_id, "run_job", {"deferred"}, timeout=300)
    job_run = int(api.xcom(dag_id, run_id, "run_job", key="job_run_id"))
    api.wait_for(
        f"the triggerer to watch dbt Cloud run {job_run}",
        lambda: len(_run_reads(emulator, job_run)) >= 2 or None,  # the task's check, then the trigger's
        timeout=300,
    )
    api.set_task_state(dag_id, run_id, "run_job", "failed")
    marked = time.monotonic()
    # Watch the emulator's request log (no API call of our own) for the trigger's cancel, then
    # ask dbt Cloud once what became of the run.
    while time.monotonic() - marked < CANCEL_WITHIN_S and not _cancels(emulator, job_run):
        time.sleep(0.25)
    seconds = time.monotonic() - marked
    status = _run_status(emulator, job_run)
    api.set_paused(dag_id, True)
    verdict = "cancelled" if status == CANCELLED else f"NOT cancelled (status {status})"
    return status == CANCELLED, f"run {job_run} {verdict} {seconds:.1f}s after the task was marked failed"


def _run_reads(emulator: DbtCloudEmulator, run_id: int) -> list[object]:
    return [r for r in emulator.requests() if r.method == "GET" and r.path.endswith(f"/runs/{run_id}/")]


def _cancels(emulator: DbtCloudEmulator, run_id: int) -> list[object]:
    suffix = f"/runs/{run_id}/cancel/"
    return [
        r for r in emulator.requests() if r.method == "POST" and r.path.endswith(suffix) and r.status == 200
    ]


def _run_status(emulator: DbtCloudEmulator, run_id: int) -> int:
    """The run's status as dbt Cloud (the emulator's API) reports it."""
    from airflow_dbt_provider.cloud import ClientSettings, DbtCloudClient

    settings = ClientSettings(
        access_url=emulator.base_url,
        account_id=emulator.account_id,
        token=emulator.token,
        verify=str(emulator.ca_cert_path),
    )
    with DbtCloudClient(settings) as client:
        return int(client.get_run(run_id).status)


def _duckdb_tables(path: Path) -> list[tuple[str, int]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        names = [
            name
            for (name,) in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables order by 1"
            ).fetchall()
        ]
        return [(name, int(con.execute(f"select count(*) from {name}").fetchone()[0])) for name in names]  # type: ignore[index]


def _record_emulator(emulator: DbtCloudEmulator) -> None:
    port = urlsplit(emulator.base_url).port
    assert port is not None
    process_guard.record_service(f"dbt Cloud emulator (port {port})", lambda: process_guard.port_in_use(port))


def main() -> int:
    # SIGINT, SIGTERM and SIGHUP unwind the `with` blocks below, which stop what they started
    # (SIGINT too when it was inherited as ignored, e.g. `make demo &` from a script).
    process_guard.raise_on_signals()
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    print(f"airflow-dbt-provider demo: everything lives in {DEMO.relative_to(REPO)}/")
    keep = os.environ.get("DEMO_KEEP_RUNNING") == "1"
    with DbtCloudEmulator(speed=5) as emulator:
        _record_emulator(emulator)
        print(f"dbt Cloud emulator listening on {emulator.base_url} (account {emulator.account_id})")
        env = {
            "AIRFLOW_CONN_DBT_CLOUD_API_DEFAULT": _connection(emulator),
            "JAFFLE_SHOP_DUCKDB_PATH": str(DEMO / "jaffle_shop.duckdb"),
            "DBT_CLOUD_ARTIFACTS_DIR": str(DEMO / "dbt_cloud_artifacts"),
            "DBT_CLOUD_EXAMPLE_POKE_INTERVAL": "2",
        }
        # Airflow's defaults (SQLite, LocalExecutor, default heartbeats and intervals): the demo
        # sets only what a deployment cannot do without (see DEFAULTS_SETTINGS in the harness);
        # no other setting is needed for it to finish.
        deployment = AirflowDeployment(
            dag_folders=[REPO / "example_dags", DEMO_DAGS],
            home=DEMO / "airflow",
            name="demo",
            env=env,
            defaults=True,
        )
        print("starting Airflow (api-server, scheduler, dag-processor, triggerer) on SQLite ...")
        with deployment:
            login = f"user {deployment.username!r}, password {deployment.password!r}"
            print(f"Airflow UI: {deployment.base_url}  ({login})\n")
            results = _run_dags(deployment)
            failed = False
            for dag_id, (state, seconds, tasks) in results.items():
                failed |= state != "success"
                print(f"DAG {dag_id}: {state} after {seconds:.0f}s")
                for task_id, task_state in tasks.items():
                    print(f"  {task_id:<20} {task_state}")
            print("\nKill while deferred: marking a deferred dbt Cloud task failed ...")
            cancelled, summary = _kill_while_deferred(deployment, emulator)
            failed |= not cancelled
            print(f"  {summary}")
            calls = Counter(
                f"{r.method} {r.path.split('/api/')[-1]}" for r in emulator.requests() if "/api/" in r.path
            )
            print("\ndbt Cloud API calls the DAGs made (from the emulator's request log; one GET of the")
            print("killed run is the demo's own check):")
            for call, count in sorted(calls.items()):
                print(f"  {count:>3} x {call}")
            duckdb_path = DEMO / "jaffle_shop.duckdb"
            if duckdb_path.exists():
                print(f"\nDuckDB warehouse {duckdb_path.relative_to(REPO)}:")
                for name, rows in _duckdb_tables(duckdb_path):
                    print(f"  {name:<40} {rows} rows")
            print("\ndemo " + ("FAILED" if failed else "succeeded"))
            print(f"Task logs: {deployment.logs_folder}")
            if keep:
                print(f"\nAirflow stays up at {deployment.base_url} — press Ctrl-C to stop it.")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            else:
                print("Stopping Airflow (run `make demo KEEP=1` to keep it up and browse the UI).")
    return 1 if failed else 0


def _run() -> int:
    """``main()``, then one line saying what was stopped, on every way out (signal, error, success)."""
    try:
        return main()
    except process_guard.Terminated as exc:
        return exc.exit_code
    finally:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            ended = process_guard.terminated_by()
            print(f"demo{f' (ended by {ended})' if ended else ''}: {process_guard.stop_report()}", flush=True)


if __name__ == "__main__":
    sys.exit(_run())
