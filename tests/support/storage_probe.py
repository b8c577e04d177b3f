"""Run one dbt operator in a fresh process, as a task on a cold worker would.

Usage: ``python tests/support/storage_probe.py '<json>'`` (see :func:`run_probe`) with
``{"mode": "execute"|"dag", "operator": class name, "kwargs": {...}, "execution_timeout": s}``.
``execute`` calls the operator's ``execute`` directly and prints ``RESULT=<summary json>`` (or
``ERROR=<type>: <message>``); ``dag`` runs it through Airflow's task runner (``dag.test()``),
whose SIGTERM handler calls ``on_kill`` as on a worker, and prints ``TASK_STATE=<state>``. The
environment (connections, cache root, parse cache URL) comes from the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_dbt_provider.operators import dbt as operators

PROBE = Path(__file__).resolve()
REPO = Path(__file__).resolve().parents[2]


def probe_argv(spec: dict[str, object]) -> list[str]:
    """The command that runs ``storage_probe.py`` with ``spec`` in a fresh process."""
    return [sys.executable, str(PROBE), json.dumps(spec)]


def probe_env(**extra: str) -> dict[str, str]:
    """This process's environment (connections, cache root) for a probe, ``tests`` importable."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    return env


def run_probe(spec: dict[str, object], timeout: float = 300.0) -> str:
    """Run a probe to its end; its output (task log and result line)."""
    done = subprocess.run(
        probe_argv(spec), env=probe_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout + done.stderr


class _TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def main(spec: dict[str, Any]) -> None:
    operator_class = getattr(operators, spec["operator"])
    kwargs = dict(spec["kwargs"])
    if spec.get("execution_timeout"):
        kwargs["execution_timeout"] = timedelta(seconds=float(spec["execution_timeout"]))
    if spec["mode"] == "execute":
        operator = operator_class(task_id="probe", **kwargs)
        try:
            summary = operator.execute(context={"ti": _TaskInstance()})
        except Exception as exc:
            print(f"ERROR={type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"RESULT={json.dumps(summary)}", flush=True)
        return
    from support.cloud_dags import run_dag

    with DAG("dbt_storage_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
        operator_class(task_id="probe", **kwargs)
    result = run_dag(dag)
    print(f"TASK_STATE={result.state('probe')}", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
