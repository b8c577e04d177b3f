"""``on_kill`` cancels the warehouse query: a ``pg_sleep`` model on real PostgreSQL, killed mid-query.

The task runs in its own process through Airflow's task runner (``dag.test()``), whose SIGTERM
handler calls ``on_kill`` as it does on a worker; that process starts with SIGINT ignored, as
background-started workers do (in subprocess mode dbt must not inherit that). The proof is on
the server: the ``pg_sleep`` query is listed in ``pg_stat_activity`` while the task runs and
gone soon after SIGTERM, long before its 300 seconds are up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.postgres import PostgresServer

PROBE = Path(__file__).with_name("kill_probe.py")
REPO = Path(__file__).resolve().parents[2]
DATABASE = "dbt_cancel"
#: Generous: the machine may be busy; the query would otherwise run for 300 s.
WAIT = 120.0


def _project(root: Path) -> Path:
    """A one-model project: a table built from ``pg_sleep(300)``, so the query itself is slow."""
    project = root / "cancel_probe"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: cancel_probe\nversion: '1.0'\nconfig-version: 2\nprofile: cancel_probe\n"
    )
    (project / "models" / "sleepy.sql").write_text(
        "{{ config(materialized='table') }}\nselect 1 as slept from pg_sleep(300)\n"
    )
    return project


def _sleeping_queries(server: PostgresServer) -> list[tuple[object, ...]]:
    return server.execute(
        "select pid, state from pg_stat_activity "
        "where query ilike '%pg_sleep(300)%' and pid <> pg_backend_pid()",
        DATABASE,
    )


def _wait_for(predicate, what: str, process: subprocess.Popen[str], *, alive: bool = True) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while not predicate():
        if alive and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the task process ended before {what}:\n{output[-4000:]}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", ["in_process", "subprocess"])
def test_on_kill_cancels_the_running_query(
    mode: str, tmp_path: Path, postgres_server: PostgresServer, request: pytest.FixtureRequest
) -> None:
    postgres_server.create_database(DATABASE)
    project = _project(tmp_path)
    connection = postgres_server.airflow_connection(DATABASE)
    env = {**os.environ, "AIRFLOW_CONN_CANCEL_PG": json.dumps(connection)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH")]))
    # The task process starts with SIGINT ignored, as a worker started in the background by a
    # non-interactive shell does (``nohup airflow celery worker &``): dbt must still cancel.
    argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, str(PROBE), str(project)]
    if mode == "subprocess":
        argv.append(str(request.getfixturevalue("dbt_executable")))
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        _wait_for(lambda: bool(_sleeping_queries(postgres_server)), "pg_sleep ran on the server", process)
        process.send_signal(signal.SIGTERM)
        try:
            cancelled = lambda: not _sleeping_queries(postgres_server)  # noqa: E731
            _wait_for(cancelled, "the query was cancelled", process, alive=False)
        except AssertionError as exc:  # say what the task logged while it was being stopped
            output = process.communicate(timeout=WAIT)[0] if process.poll() is not None else "(still running)"
            pytest.fail(f"{exc}\ntask output:\n{output[-6000:]}")
        output, _ = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "TASK_STATE=failed" in output, output[-4000:]
    assert postgres_server.password not in output
