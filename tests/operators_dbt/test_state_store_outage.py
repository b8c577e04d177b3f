"""A task state store outage never fails a dbt Core task whose dbt run succeeded.

The store is reached through the API server; when that refuses, ``retry_from_failure`` reads
nothing (the try runs in full) and keeps nothing, and the task still ends as dbt did.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from support.dbt_projects import copy_project

from airflow_dbt_provider.compat import HAS_TASK_STATE_STORE
from airflow_dbt_provider.operators.dbt import DbtSeedOperator


class UnreachableStore:
    """A task state store whose API server is down: every call raises, as the Task SDK's client does."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _down(self, method: str, key: str) -> None:
        self.calls.append(f"{method} {key}")
        raise ConnectionError("task state store: API server unreachable")

    def get(self, key: str) -> Any:
        self._down("get", key)

    def set(self, key: str, value: Any) -> None:
        self._down("set", key)

    def delete(self, key: str) -> None:
        self._down("delete", key)


class SecondTry:
    try_number = 2

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the task state store is Airflow 3.3+")
def test_a_store_outage_does_not_fail_a_successful_dbt_run(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    store = UnreachableStore()
    seed = DbtSeedOperator(
        task_id="seed",
        project_dir=str(project),
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "outage.duckdb")},
        retry_from_failure=True,
    )
    with DAG(dag_id="store_outage", schedule=None, start_date=datetime(2026, 1, 1)):
        pass
    summary = seed.execute(context={"ti": SecondTry(), "task_state_store": store})  # type: ignore[arg-type]
    assert summary["success"] is True
    assert summary["command"] == "seed"  # the full command: nothing could be read to retry from
    assert store.calls == ["get dbt_retry_from_failure", "delete dbt_retry_from_failure"]
