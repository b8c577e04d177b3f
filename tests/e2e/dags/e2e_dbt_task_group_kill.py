"""A ``single_build`` group whose ``slow`` model waits while a flag file exists (for the kill test).

The project is a copy of the bundled example plus ``models/slow.py``, a dbt-duckdb Python model
that sleeps while ``$AIRFLOW_HOME/e2e_tg_kill/slow.flag`` exists, so the test can kill the
producer while dbt is inside that one node, then remove the flag and clear the node's task.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

ROOT = Path(os.environ.get("AIRFLOW_HOME", "/tmp")) / "e2e_tg_kill"
FLAG = ROOT / "slow.flag"
SLOW_MODEL = f"""
import os
import time


def model(dbt, session):
    dbt.config(materialized="table")
    customers = dbt.ref("stg_customers")
    deadline = time.time() + 600
    while os.path.exists({str(FLAG)!r}) and time.time() < deadline:
        time.sleep(0.5)
    return customers
"""


def _project() -> Path:
    project = ROOT / "jaffle_shop"
    if not (project / "models" / "slow.py").is_file():
        examples = Path(str(resources.files("airflow_dbt_provider.testing")))
        for name in ("jaffle_shop", "jaffle_utils"):
            shutil.copytree(examples / name, ROOT / name, dirs_exist_ok=True)
        (project / "models" / "slow.py").write_text(SLOW_MODEL)
    return project


with DAG("e2e_dbt_task_group_kill", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    DbtTaskGroup(
        group_id="jaffle",
        project_dir=_project(),
        mode="single_build",
        operator_args={"env": {"JAFFLE_SHOP_DUCKDB_PATH": str(ROOT / "kill.duckdb")}},
    )
