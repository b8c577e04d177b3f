"""``artifacts_dir`` on object storage: uploaded when the task ends, whatever dbt's outcome.

Real dbt on DuckDB, real uploads to moto's S3 server on loopback; the operators run through
``execute`` as a task runner calls it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.s3_server import Bucket, self_contained_project

from airflow_dbt_provider.core import DbtCommandFailedError, DbtInvocationError
from airflow_dbt_provider.operators.dbt import DbtBuildOperator, DbtRunOperator


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _execute(operator: DbtRunOperator) -> Any:
    return operator.execute(context={"ti": RecordingTaskInstance()})  # type: ignore[arg-type]


@pytest.mark.usefixtures("cache_root")
def test_success_and_failure_both_upload_artifacts_and_dbt_log(bucket: Bucket, tmp_path: Path) -> None:
    project = self_contained_project(tmp_path / "src")
    (project / "models" / "broken.sql").write_text("select * from main.no_such_table\n")
    bucket.upload(project, "projects/jaffle_shop")
    common: dict[str, Any] = {
        "project_dir": bucket.url("projects/jaffle_shop"),
        "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    }

    summary = _execute(
        DbtBuildOperator(
            task_id="ok", select=["raw_orders", "stg_orders"], artifacts_dir=bucket.url("ok"), **common
        )
    )
    assert summary["success"] is True
    uploaded = bucket.objects("ok/")
    assert {"ok/run_results.json", "ok/manifest.json", "ok/dbt.log"} <= set(uploaded)
    results = json.loads(uploaded["ok/run_results.json"])["results"]
    assert {r["unique_id"] for r in results} >= {
        "seed.jaffle_shop.raw_orders",
        "model.jaffle_shop.stg_orders",
    }
    assert b"stg_orders" in uploaded["ok/dbt.log"]

    with pytest.raises(DbtCommandFailedError, match="broken"):
        _execute(
            DbtRunOperator(task_id="failing", select="broken", artifacts_dir=bucket.url("failing"), **common)
        )
    uploaded = bucket.objects("failing/")
    statuses = {
        r["unique_id"]: r["status"] for r in json.loads(uploaded["failing/run_results.json"])["results"]
    }
    assert statuses == {"model.jaffle_shop.broken": "error"}
    assert b"no_such_table" in uploaded["failing/dbt.log"]


@pytest.mark.usefixtures("cache_root")
def test_a_project_that_does_not_parse_still_uploads_dbt_log(bucket: Bucket, tmp_path: Path) -> None:
    """dbt raises while parsing (no node ran, no run_results): its dbt.log says why, and goes up."""
    project = self_contained_project(tmp_path / "src")
    (project / "models" / "unparsable.sql").write_text("select 1 {% if true %} as x\n")  # no endif
    bucket.upload(project, "projects/jaffle_shop")
    operator = DbtRunOperator(
        task_id="unparsable",
        project_dir=bucket.url("projects/jaffle_shop"),
        artifacts_dir=bucket.url("unparsable"),
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    )
    with pytest.raises(DbtInvocationError, match="unparsable"):
        _execute(operator)
    assert b"unparsable.sql" in bucket.objects("unparsable/")["unparsable/dbt.log"]


@pytest.mark.usefixtures("cache_root")
def test_an_upload_failure_is_logged_and_never_changes_the_outcome(
    bucket: Bucket, tmp_path: Path, task_log: Any
) -> None:
    """The bucket is missing: the task's outcome is still dbt's, and the log says what was lost."""
    project = self_contained_project(tmp_path / "project")
    (project / "models" / "hello.sql").write_text("select 1 as id\n")
    missing = bucket.url("x").replace(bucket.name, f"{bucket.name}-gone")
    operator = DbtRunOperator(
        task_id="lost",
        project_dir=str(project),
        select="hello",
        artifacts_dir=missing,
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    )
    assert _execute(operator)["success"] is True
    log = task_log.text()
    assert f"artifacts_dir s3://adp_s3@{bucket.name}-gone/x: could not upload" in log
    assert "dbt.log" in log.split("could not upload", 1)[1].splitlines()[0]
    # No bucket was created on the way (s3fs's makedirs would have).
    assert f"{bucket.name}-gone" not in {b["Name"] for b in bucket.server.client().list_buckets()["Buckets"]}


@pytest.mark.usefixtures("cache_root")
def test_a_local_artifacts_dir_is_written_as_before_and_a_file_url_works(tmp_path: Path) -> None:
    project = self_contained_project(tmp_path / "project")
    (project / "models" / "hello.sql").write_text("select 1 as id\n")
    common: dict[str, Any] = {
        "project_dir": str(project),
        "select": "hello",
        "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    }
    _execute(
        DbtRunOperator(task_id="url", artifacts_dir=(tmp_path / "via-url").as_uri() + "/nested", **common)
    )
    assert (tmp_path / "via-url" / "nested" / "run_results.json").is_file()
    assert (tmp_path / "via-url" / "nested" / "dbt.log").is_file()
