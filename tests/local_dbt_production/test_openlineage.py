"""OpenLineage events of a local dbt run carry the datasets dbt read and built.

The OpenLineage provider runs for real with its file transport; the test reads the events it
wrote and finds our inputs and outputs in the run task's COMPLETE event.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dbt_projects import copy_project
from support.openlineage_probe import complete_event, datasets, run_probe

PROBE = Path(__file__).with_name("lineage_probe.py")


@pytest.mark.usefixtures("airflow_db")
def test_run_task_complete_event_has_dbt_datasets(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    events_file = tmp_path / "openlineage.jsonl"
    proc = run_probe(PROBE, [str(project), str(tmp_path / "lineage.duckdb")], events_file)
    assert "TASK_STATES=success,success" in proc.stdout, (proc.stdout + proc.stderr)[-4000:]
    assert events_file.is_file(), (proc.stdout + proc.stderr)[-4000:]
    event = complete_event(events_file, "run")
    assert datasets(event, "inputs") == {("duckdb://lineage", "lineage.main_raw.raw_customers")}
    assert datasets(event, "outputs") == {("duckdb://lineage", "lineage.main.stg_customers")}
