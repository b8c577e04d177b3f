"""OpenLineage events of a local dbt run carry the datasets dbt read and built.

The OpenLineage provider runs for real with its file transport; the test reads the events it
wrote and finds our inputs and outputs in the run task's COMPLETE event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.dbt_projects import copy_project

PROBE = Path(__file__).with_name("lineage_probe.py")
REPO = Path(__file__).resolve().parents[2]


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.usefixtures("airflow_db")
def test_run_task_complete_event_has_dbt_datasets(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "adp-tests",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")])
        ),
    }
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(project), str(tmp_path / "lineage.duckdb")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "TASK_STATES=success,success" in proc.stdout, (proc.stdout + proc.stderr)[-4000:]
    assert events_file.is_file(), (proc.stdout + proc.stderr)[-4000:]
    complete = [
        e
        for e in _events(events_file)
        if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name", "").endswith(".run")
    ]
    assert complete, [e.get("job", {}).get("name") for e in _events(events_file)]
    event = complete[-1]
    inputs = {(d["namespace"], d["name"]) for d in event["inputs"]}
    outputs = {(d["namespace"], d["name"]) for d in event["outputs"]}
    assert inputs == {("duckdb://lineage", "lineage.main_raw.raw_customers")}
    assert outputs == {("duckdb://lineage", "lineage.main.stg_customers")}
