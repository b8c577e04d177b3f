"""Cold workers: the shared parse cache makes a fresh process start warm, and ``retry_from_failure``
finds its state in an ``artifacts_dir`` URL from another worker.

A "cold worker" here is a fresh process whose cache root (same path, as the docs require) was
emptied: nothing of the first worker's is left but what is on moto's S3 server.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG
from support.cloud_dags import run_dag
from support.s3_server import Bucket, self_contained_project
from support.storage_probe import run_probe

from airflow_dbt_provider import retry_from_failure, task_state
from airflow_dbt_provider.object_storage.parse_cache import SETTING, configured_parse_cache
from airflow_dbt_provider.operators.dbt import DbtBuildOperator, DbtRunOperator, decode_artifact


class _NoXcom:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


NO_XCOM = _NoXcom()
FULL_PARSE = "Unable to do partial parsing"
PARSE_CACHE_ENV = "AIRFLOW__DBT_PROVIDER__PARSE_CACHE_URL"


def test_a_cold_worker_starts_warm_from_the_parse_cache_on_object_storage(
    bucket: Bucket, cache_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task_log: Any
) -> None:
    project = self_contained_project(tmp_path / "src")
    (project / "models" / "hello.sql").write_text("select 1 as id\n")
    bucket.upload(project, "projects/jaffle_shop")
    monkeypatch.setenv(PARSE_CACHE_ENV, bucket.url("parse-cache"))
    kwargs = {
        "project_dir": bucket.url("projects/jaffle_shop"),
        "select": "hello",
        "env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tmp_path / "w.duckdb")},
    }
    with bucket.server.recording():
        DbtRunOperator(task_id="first", **kwargs).execute(context={"ti": NO_XCOM})  # type: ignore[arg-type]
    first = task_log.text()
    assert FULL_PARSE in first
    assert "Published partial-parse file" in first
    assert [k for k in bucket.objects("parse-cache/") if k.endswith("/partial_parse.msgpack")]

    shutil.rmtree(cache_root)  # the next task runs on a machine that never saw the project
    with bucket.server.recording() as requests:
        output = run_probe({"mode": "execute", "operator": "DbtRunOperator", "kwargs": kwargs})
    assert "RESULT=" in output, output[-4000:]
    assert "Partial-parse file" in output
    assert f"from {SETTING} s3://adp_s3@{bucket.name}/parse-cache" in output
    assert FULL_PARSE not in output, output[-4000:]
    assert "Published partial-parse file" not in output  # nothing changed: nothing to publish
    assert any(r.path.endswith("/partial_parse.msgpack") and r.method == "GET" for r in requests)


def test_an_unusable_parse_cache_setting_is_a_warning(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("tests.object_storage.parse_cache")
    monkeypatch.setenv(PARSE_CACHE_ENV, f"s3://no_such_conn@{bucket.name}/cache")
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert configured_parse_cache(log) is None
    assert f"{SETTING}='s3://no_such_conn@{bucket.name}/cache' names the Airflow connection" in caplog.text
    assert "parses without the shared parse cache" in caplog.text
    monkeypatch.delenv(PARSE_CACHE_ENV)
    assert configured_parse_cache(log) is None


FLAKY = "model.jaffle_shop.flaky"
FLAKY_CHILD = "model.jaffle_shop.flaky_child"


@pytest.mark.usefixtures("airflow_db")
def test_retry_from_failure_keeps_its_state_in_an_artifacts_dir_url(
    bucket: Bucket, cache_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task_log: Any
) -> None:
    """Without a task state store (Airflow < 3.3) the state goes to the URL; the retry runs on a
    cold worker (cache root emptied) and still runs only the failed node and its skipped child."""
    monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
    monkeypatch.setattr(retry_from_failure, "has_task_state_store", lambda: False)
    monkeypatch.setenv(PARSE_CACHE_ENV, bucket.url("parse-cache"))  # the other worker starts warm
    project = self_contained_project(tmp_path / "src")
    models = project / "models" / "staging"
    (models / "flaky.sql").write_text(
        "select c.* from {{ ref('stg_customers') }} as c cross join main.retry_flag\n"
    )
    (models / "flaky_child.sql").write_text("select * from {{ ref('flaky') }}\n")
    bucket.upload(project, "projects/jaffle_shop")
    warehouse = tmp_path / "retry.duckdb"
    state_between_tries: list[list[str]] = []

    def move_to_another_worker(context: Any) -> None:
        state_between_tries.append(sorted(bucket.objects("artifacts/")))
        shutil.rmtree(cache_root)
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create table main.retry_flag as select 1 as ok")

    with DAG("dbt_retry_from_object_storage", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        DbtBuildOperator(
            task_id="build",
            project_dir=bucket.url("projects/jaffle_shop"),
            env={"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
            select=["+flaky+"],
            retry_from_failure=True,
            artifacts_dir=bucket.url("artifacts/build"),
            push_artifacts=["run_results.json"],
            retries=1,
            retry_delay=timedelta(seconds=0),
            on_retry_callback=move_to_another_worker,
        )
    result = run_dag(dag)
    assert result.state("build") == "success", result.errors("build")
    assert result.try_number("build") == 2
    assert state_between_tries == [
        [
            "artifacts/build/.dbt_retry_from_failure.json",
            "artifacts/build/dbt.log",
            "artifacts/build/graph_summary.json",
            "artifacts/build/manifest.json",
            "artifacts/build/run_results.json",
            "artifacts/build/semantic_manifest.json",
        ]
    ]
    second = decode_artifact(result.xcom("build", "run_results"))
    assert {r["unique_id"]: r["status"] for r in second["results"]} == {
        FLAKY: "success",
        FLAKY_CHILD: "success",
    }
    assert "artifacts/build/.dbt_retry_from_failure.json" not in bucket.objects("artifacts/")  # forgotten
    # The task log names where the state went (not "the task state store" this Airflow lacks).
    log = task_log.text()
    assert (
        f"Kept 2 failed/skipped node(s) in artifacts_dir {bucket.url('artifacts/build')} for a retry" in log
    )
