"""A ``per_node`` group on a PostgreSQL warehouse, its profile from an Airflow connection.

The project is a copy of the bundled example plus a model ``gated`` that reads one row from a
control table (``e2e_tg_control.gate``) with an ``accepted_values`` test on it: the test fails
while the row says ``closed``, so the e2e test can fail exactly that node, fix the data and clear
the node's task. ``E2E_PG_WAREHOUSE`` comes from the deployment's environment
(``AIRFLOW_CONN_E2E_PG_WAREHOUSE``, see tests/e2e/conftest.py). Each task pushes dbt's
``run_results.json`` so the test can tell from dbt itself which nodes each try built.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path

from airflow.sdk import DAG

from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

ROOT = Path(os.environ.get("AIRFLOW_HOME", "/tmp")) / "e2e_tg_pg"
CONTROL_SCHEMA = "e2e_tg_control"
GATED_MODEL = "select state from {{ source('e2e_control', 'gate') }}\n"
GATED_SCHEMA = f"""
version: 2
sources:
  - name: e2e_control
    schema: {CONTROL_SCHEMA}
    tables:
      - name: gate
models:
  - name: gated
    columns:
      - name: state
        data_tests:
          - accepted_values:
              values: ["open"]
"""


def _project() -> Path:
    project = ROOT / "jaffle_shop"
    if not (project / "models" / "gate" / "schema.yml").is_file():
        examples = Path(str(resources.files("airflow_dbt_provider.testing")))
        for name in ("jaffle_shop", "jaffle_utils"):
            shutil.copytree(examples / name, ROOT / name, dirs_exist_ok=True)
        gate = project / "models" / "gate"
        gate.mkdir(parents=True, exist_ok=True)
        (gate / "gated.sql").write_text(GATED_MODEL)
        (gate / "schema.yml").write_text(GATED_SCHEMA)
    return project


with DAG("e2e_dbt_task_group_pg", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    DbtTaskGroup(
        group_id="jaffle",
        project_dir=_project(),
        profile_conn_id="e2e_pg_warehouse",
        mode="per_node",
        operator_args={"push_artifacts": ["run_results.json"]},
    )
