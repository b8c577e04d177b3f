"""The pure parts: the compact retry state and the lineage datasets, on hand-written artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_dbt_provider.core.retry_state import ArtifactsDirStore, retry_state, usable, write_run_results
from airflow_dbt_provider.lineage import namespace, operator_lineage, run_lineage


def _result(unique_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "status": status,
        "timing": [],
        "thread_id": "Thread-1",
        "execution_time": 0.1,
        "adapter_response": {"rows_affected": 3},
        "message": "x" * 5000,
        "failures": None,
        "compiled": True,
        "compiled_code": "select 1 -- " + "y" * 5000,
        "relation_name": None,
        **extra,
    }


RUN_RESULTS = {
    "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json"},
    "elapsed_time": 1.0,
    "args": {"which": "build", "select": ["+flaky+"]},
    "results": [
        _result("model.p.ok", "success"),
        _result("model.p.flaky", "error"),
        _result("model.p.child", "skipped"),
        _result("test.p.ok_test", "pass"),
    ],
}


def test_retry_state_keeps_only_what_dbt_retry_reruns(tmp_path: Path) -> None:
    state = retry_state(json.dumps(RUN_RESULTS).encode())
    assert state is not None
    assert usable(json.loads(json.dumps(state)))  # survives the store's JSON round trip
    assert state["command"] == "build"
    assert state["retry_nodes"] == ["model.p.child", "model.p.flaky"]
    assert len(json.dumps(state)) < 2000  # bulky SQL and messages are not stored
    written = json.loads(write_run_results(state, tmp_path / "state").read_text())
    assert written["args"] == RUN_RESULTS["args"]
    assert [r["unique_id"] for r in written["results"]] == ["model.p.flaky", "model.p.child"]
    assert written["results"][0]["compiled_code"] is None
    assert len(written["results"][0]["message"]) == 500


def test_artifacts_dir_store_keeps_state_per_task_instance(tmp_path: Path) -> None:
    """Without a task state store (Airflow < 3.3) the state is a file that names its task instance."""
    state = retry_state(json.dumps(RUN_RESULTS).encode())
    mine = ArtifactsDirStore(tmp_path / "artifacts", owner='["dag", "run_1", "build", -1]')
    other_run = ArtifactsDirStore(tmp_path / "artifacts", owner='["dag", "run_2", "build", -1]')
    assert mine.get("k") is None
    mine.set("k", state)
    assert mine.get("k") == state
    assert usable(ArtifactsDirStore(tmp_path / "artifacts", mine.owner).get("k"))  # a later try reads it
    assert other_run.get("k") is None  # another DAG run's try never retries from it
    other_run.delete("k")
    assert mine.get("k") == state
    mine.delete("k")
    assert mine.get("k") is None
    assert list((tmp_path / "artifacts").iterdir()) == []  # no temporary files left behind


def test_no_retry_state_after_success_and_unknown_states_are_ignored() -> None:
    success = {**RUN_RESULTS, "results": [_result("model.p.ok", "success")]}
    assert retry_state(json.dumps(success).encode()) is None
    assert not usable(None)
    assert not usable({"format": 99, "run_results_gzip_b64": "", "retry_nodes": ["a"]})


MANIFEST = {
    "metadata": {"adapter_type": "postgres"},
    "sources": {"source.p.raw.orders": {"database": "db", "schema": "raw", "identifier": "orders"}},
    "nodes": {
        "model.p.stg": {
            "resource_type": "model",
            "database": "db",
            "schema": "public",
            "alias": "stg",
            "config": {"materialized": "view"},
            "depends_on": {"nodes": ["source.p.raw.orders", "model.p.eph"]},
        },
        "model.p.eph": {
            "resource_type": "model",
            "database": "db",
            "schema": "public",
            "alias": "eph",
            "config": {"materialized": "ephemeral"},
            "depends_on": {"nodes": []},
        },
        "model.p.mart": {
            "resource_type": "model",
            "database": "db",
            "schema": "public",
            "alias": "mart",
            "config": {"materialized": "table"},
            "depends_on": {"nodes": ["model.p.stg", "model.p.old"]},
        },
        "model.p.old": {
            "resource_type": "model",
            "database": "db",
            "schema": "public",
            "alias": "old",
            "config": {"materialized": "table"},
            "depends_on": {"nodes": []},
        },
    },
}


def test_lineage_outputs_are_built_relations_and_inputs_what_they_read() -> None:
    run_results = {
        "results": [
            {"unique_id": "model.p.stg", "status": "success"},
            {"unique_id": "model.p.mart", "status": "success"},
            {"unique_id": "model.p.eph", "status": "success"},
        ]
    }
    inputs, outputs = run_lineage(run_results, MANIFEST, host="db.internal", port=5433)
    assert [(d.namespace, d.name) for d in outputs] == [
        ("postgres://db.internal:5433", "db.public.stg"),
        ("postgres://db.internal:5433", "db.public.mart"),
    ]
    assert [d.name for d in inputs] == ["db.raw.orders", "db.public.old"]
    lineage = operator_lineage(run_results, MANIFEST)
    assert [d.namespace for d in lineage.outputs] == ["postgres://db", "postgres://db"]
    assert namespace("snowflake", "ANALYTICS", host=None, port=None) == "snowflake://ANALYTICS"
