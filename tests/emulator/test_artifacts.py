"""The shipped artifacts come from real dbt runs of the current example project, and stay in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_dbt_provider.testing.dbt_cloud_emulator.artifacts import (
    builtin_artifact,
    builtin_log,
    project_fingerprint,
    shipped_fingerprint,
)

TESTING = Path(__file__).resolve().parents[2] / "airflow_dbt_provider" / "testing"
PROJECT = TESTING / "jaffle_shop"
REGENERATE = "the example project changed: run `.venv/bin/python scripts/generate_emulator_artifacts.py`"


def test_artifacts_were_generated_from_the_current_project_sources() -> None:
    """Any edit to the example project (or its local package) needs regenerated artifacts."""
    assert project_fingerprint(PROJECT, TESTING / "jaffle_utils") == shipped_fingerprint(), REGENERATE


def expected_node_ids() -> set[str]:
    """Node ids dbt derives from file names: every model, seed and singular test file is a node."""
    ids = {f"model.jaffle_shop.{p.stem}" for p in (PROJECT / "models").rglob("*.sql")}
    ids |= {f"seed.jaffle_shop.{p.stem}" for p in (PROJECT / "seeds").rglob("*.csv")}
    ids |= {f"test.jaffle_shop.{p.stem}" for p in (PROJECT / "tests").rglob("*.sql")}
    return ids


@pytest.mark.parametrize("outcome", ["success", "fail"])
def test_shipped_manifest_has_every_project_file_as_a_node(outcome: str) -> None:
    manifest = json.loads(builtin_artifact(f"{outcome}/manifest.json"))
    assert manifest["metadata"]["project_name"] == "jaffle_shop"
    missing = expected_node_ids() - set(manifest["nodes"])
    assert not missing, f"{REGENERATE} (missing nodes {sorted(missing)})"
    # The failing variant differs only in one test's SQL, never in its node set.
    other = json.loads(builtin_artifact("success/manifest.json"))
    assert set(manifest["nodes"]) == set(other["nodes"])


def test_success_results_all_pass() -> None:
    results = json.loads(builtin_artifact("success/run_results.json"))["results"]
    assert results
    assert {r["status"] for r in results} <= {"success", "pass"}
    assert "Completed successfully" in builtin_log("success")


def test_fail_results_have_one_failing_test_and_skips() -> None:
    results = json.loads(builtin_artifact("fail/run_results.json"))["results"]
    failing = [r["unique_id"] for r in results if r["status"] == "fail"]
    assert failing == [next(u for u in failing if "assert_order_amount_not_negative" in u)]
    assert any(r["status"] == "skipped" for r in results)
    assert "Completed with 1 error" in builtin_log("fail")
