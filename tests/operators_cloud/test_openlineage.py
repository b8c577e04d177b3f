"""OpenLineage for dbt Cloud runs: the task's events carry the datasets the run read and built,
and the run's cause names the task's OpenLineage run (``openlineage_inject_parent_job_info``).

The OpenLineage provider runs for real with its file transport in a probe process that runs the
job on the emulator; the datasets come from the run's artifacts (a real ``dbt build`` of the
example project), so the test checks them against the project's models and seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cloud_operators import SECRET_TOKEN
from support.openlineage_probe import complete_event, datasets, run_probe

from airflow_dbt_provider.cloud.run_start import LINEAGE_MARKER_KEY, RunMark

PROBE = Path(__file__).with_name("lineage_probe.py")


@pytest.mark.usefixtures("airflow_db")
def test_run_job_complete_event_has_the_runs_datasets(tmp_path: Path) -> None:
    events_file = tmp_path / "openlineage.jsonl"
    proc = run_probe(PROBE, [], events_file)
    assert "TASK_STATE=success" in proc.stdout, (proc.stdout + proc.stderr)[-4000:]
    event = complete_event(events_file, "run_job")
    outputs = datasets(event, "outputs")
    names = {name.rsplit(".", 1)[1] for _, name in outputs}
    assert {"customers", "orders", "stg_customers", "raw_customers"} <= names
    (namespace,) = {namespace for namespace, _ in outputs}  # one warehouse
    assert namespace.startswith("duckdb://")
    assert not datasets(event, "inputs") & outputs  # what the run built is not also an input
    assert SECRET_TOKEN not in events_file.read_text()
    # openlineage_inject_parent_job_info: the run's cause names this task's OpenLineage run.
    (cause,) = [line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("RUN_CAUSE=")]
    assert len(cause) <= 255  # with a 420-character trigger_reason
    payload = json.loads(cause)
    mark = RunMark.parse(payload[LINEAGE_MARKER_KEY])  # a retry finds the run by it
    assert mark is not None
    assert mark.try_number == 1
    assert RunMark.parse(cause) == mark
    parent = payload["parent"]
    assert parent["run"]["runId"] == event["run"]["runId"]
    assert parent["job"] == {"namespace": "adp-tests", "name": "dbt_cloud_lineage_probe.run_job"}
