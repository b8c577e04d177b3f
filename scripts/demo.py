"""`make demo`: run the example DAGs end to end on embedded defaults and summarise what ran.

Everything stays under ``.demo/`` in the repository: a SQLite Airflow metadata DB in its own
``AIRFLOW_HOME``, the DuckDB warehouse file, downloaded dbt Cloud artifacts. dbt Cloud is the
bundled emulator, served over HTTPS on loopback from this process for the length of the demo.
Each DAG runs with ``airflow dags test`` (triggers run inline), so nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cryptography.fernet import Fernet

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
DAGS = ("dbt_local_duckdb", "dbt_cloud_job")
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "JAFFLE_SHOP_DUCKDB_PATH": str(DEMO / "jaffle_shop.duckdb"),
            "DBT_CLOUD_ARTIFACTS_DIR": str(DEMO / "dbt_cloud_artifacts"),
            "DBT_CLOUD_EXAMPLE_POKE_INTERVAL": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


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


def _airflow(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, check=False)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    return result


def _task_states(home: Path, dag_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The latest run's state and its task states, read straight from the demo's SQLite DB."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        row = db.execute(
            "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        if row is None:
            return "not run", []
        tasks = db.execute(
            "select task_id, state from task_instance where dag_id = ? and run_id = ? order by start_date",
            (dag_id, row[0]),
        ).fetchall()
    return str(row[1]), [(str(t), str(s)) for t, s in tasks]


def _duckdb_tables(path: Path) -> list[tuple[str, int]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables order by 1"
        ).fetchall()
        return [(name, con.execute(f"select count(*) from {name}").fetchone()[0]) for (name,) in tables]  # type: ignore[index]


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    home = DEMO / "airflow"
    home.mkdir(parents=True)
    env = _environment(home)
    print(f"airflow-dbt-provider demo — everything lives in {DEMO.relative_to(REPO)}/")
    migrate = _airflow(env, "db", "migrate", log=DEMO / "db-migrate.log")
    if migrate.returncode:
        print(f"airflow db migrate failed; see {DEMO / 'db-migrate.log'}")
        return 1

    failed = False
    with DbtCloudEmulator(speed=5) as emulator:
        env["AIRFLOW_CONN_DBT_CLOUD_API_DEFAULT"] = _connection(emulator)
        print(f"dbt Cloud emulator listening on {emulator.base_url} (account {emulator.account_id})\n")
        for dag_id in DAGS:
            started = time.monotonic()
            log = DEMO / f"{dag_id}.log"
            result = _airflow(env, "dags", "test", dag_id, log=log)
            elapsed = time.monotonic() - started
            state, tasks = _task_states(home, dag_id)
            failed |= result.returncode != 0 or state != "success"
            print(f"DAG {dag_id}: {state} in {elapsed:.0f}s (full log: {log.relative_to(REPO)})")
            for task_id, task_state in tasks:
                print(f"  {task_id:<20} {task_state}")
        calls = Counter(
            f"{r.method} {r.path.split('/api/')[-1]}" for r in emulator.requests() if "/api/" in r.path
        )
    print("\ndbt Cloud API calls the DAGs made (from the emulator's request log):")
    for call, count in sorted(calls.items()):
        print(f"  {count:>3} x {call}")
    duckdb_path = DEMO / "jaffle_shop.duckdb"
    if duckdb_path.exists():
        print(f"\nDuckDB warehouse {duckdb_path.relative_to(REPO)}:")
        for name, rows in _duckdb_tables(duckdb_path):
            print(f"  {name:<40} {rows} rows")
    print("\ndemo " + ("FAILED" if failed else "succeeded"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
