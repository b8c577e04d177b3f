"""A killed or timed-out task still uploads its artifacts: ``dbt.log`` says what dbt was doing.

The task runs in a fresh process through Airflow's task runner (``dag.test()``), whose SIGTERM
handler calls ``on_kill`` as a worker's does, and whose ``execution_timeout`` raises in the task;
the slow node is a ``pg_sleep`` model on the suite's real PostgreSQL server, and the project and
``artifacts_dir`` are on moto's S3 server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.postgres import PostgresServer
from support.s3_server import Bucket
from support.storage_probe import probe_argv, probe_env

DATABASE = "dbt_storage_kill"
#: Generous: the machine may be busy.
WAIT = 180.0


def _pg_project(root: Path, seconds: int) -> Path:
    project = root / "sleepy_project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: sleepy_project\nversion: '1.0'\nconfig-version: 2\nprofile: sleepy_project\n"
    )
    (project / "models" / "sleepy.sql").write_text(
        f"{{{{ config(materialized='table') }}}}\nselect 1 as slept from pg_sleep({seconds})\n"
    )
    return project


@pytest.fixture
def pg_connection(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    postgres_server.create_database(DATABASE)
    connection = postgres_server.airflow_connection(DATABASE)
    monkeypatch.setenv("AIRFLOW_CONN_STORAGE_PG", json.dumps(connection))
    return postgres_server


def _sleeping(server: PostgresServer) -> bool:
    rows = server.execute(
        "select pid from pg_stat_activity where query ilike '%pg_sleep(120)%' and pid <> pg_backend_pid()",
        DATABASE,
    )
    return bool(rows)


def _start(bucket: Bucket, tmp_path: Path, prefix: str, seconds: int, **spec: Any) -> subprocess.Popen[str]:
    bucket.upload(_pg_project(tmp_path, seconds), "projects/sleepy_project")
    kwargs = {
        "project_dir": bucket.url("projects/sleepy_project"),
        "profile_conn_id": "storage_pg",
        "select": "sleepy",
        "artifacts_dir": bucket.url(prefix),
    }
    return subprocess.Popen(
        probe_argv({"mode": "dag", "operator": "DbtRunOperator", "kwargs": kwargs, **spec}),
        env=probe_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )


def _finish(process: subprocess.Popen[str]) -> str:
    try:
        return process.communicate(timeout=WAIT)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _uploaded_log(bucket: Bucket, prefix: str, output: str) -> bytes:
    uploaded = bucket.objects(f"{prefix}/")
    assert f"{prefix}/dbt.log" in uploaded, output[-4000:]
    assert f"artifacts_dir s3://adp_s3@{bucket.name}/{prefix}: uploaded" in output
    return uploaded[f"{prefix}/dbt.log"]


@pytest.mark.usefixtures("airflow_db", "cache_root")
def test_a_killed_task_uploads_its_artifacts(
    bucket: Bucket, pg_connection: PostgresServer, tmp_path: Path
) -> None:
    process = _start(bucket, tmp_path, "killed", 120)
    try:
        deadline = time.monotonic() + WAIT
        while not _sleeping(pg_connection):
            if process.poll() is not None:
                pytest.fail(f"the task ended before its query ran:\n{_finish(process)[-4000:]}")
            assert time.monotonic() < deadline, "timed out waiting for pg_sleep to run"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        output = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "TASK_STATE=failed" in output, output[-4000:]
    assert b"START sql table model" in _uploaded_log(bucket, "killed", output)
    assert pg_connection.password not in output


@pytest.mark.usefixtures("airflow_db", "cache_root")
def test_a_timed_out_task_uploads_its_artifacts(
    bucket: Bucket, pg_connection: PostgresServer, tmp_path: Path
) -> None:
    # A short query: on a timeout (unlike a kill) dbt waits for its running query before it fails.
    output = _finish(_start(bucket, tmp_path, "timed-out", 25, execution_timeout=8))
    assert "TASK_STATE=failed" in output, output[-4000:]
    assert "Timeout" in output
    # Whatever dbt was doing when the time ran out (parsing, on a busy machine, or the query).
    assert b"Running with dbt=" in _uploaded_log(bucket, "timed-out", output)
