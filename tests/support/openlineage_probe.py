"""Run a probe script with the OpenLineage provider on for real (file transport) and read its events.

A separate process because the OpenLineage listener is registered when Airflow loads its plugins,
once per process, from the ``AIRFLOW__OPENLINEAGE__*`` settings given in the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_probe(probe: Path, args: list[str], events_file: Path) -> subprocess.CompletedProcess[str]:
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
    return subprocess.run(
        [sys.executable, str(probe), *args], env=env, capture_output=True, text=True, timeout=600
    )


def complete_event(events_file: Path, task_id: str) -> dict[str, Any]:
    """The last COMPLETE event of the task ``task_id`` (its job name ends with ``.<task_id>``)."""
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = [
        e
        for e in events
        if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name", "").endswith(f".{task_id}")
    ]
    assert complete, [e.get("job", {}).get("name") for e in events]
    return complete[-1]


def datasets(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in event[side]}
