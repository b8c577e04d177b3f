"""Retry only what failed across two tries of one task, and Asset events for the built models.

Both run real DAGs with ``dag.test()`` against the suite's SQLite metadata DB, so the task state
store (retry) and the asset tables (events) are Airflow's own.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk import DAG
from support.cloud_dags import run_dag
from support.dbt_projects import copy_project
from support.postgres import PostgresServer

from airflow_dbt_provider import retry_from_failure, task_state
from airflow_dbt_provider.compat import HAS_TASK_STATE_STORE
from airflow_dbt_provider.operators.dbt import DbtBuildOperator, decode_artifact

FLAKY = "model.jaffle_shop.flaky"
FLAKY_CHILD = "model.jaffle_shop.flaky_child"


def _add_flaky_models(project: Path) -> None:
    """``flaky`` fails until the table ``main.retry_flag`` exists; ``flaky_child`` depends on it."""
    models = project / "models" / "staging"
    (models / "flaky.sql").write_text(
        "select c.* from {{ ref('stg_customers') }} as c cross join main.retry_flag\n"
    )
    (models / "flaky_child.sql").write_text("select * from {{ ref('flaky') }}\n")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    "keeper",
    [
        pytest.param(
            "task_state_store",
            marks=pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="the task state store is Airflow 3.3+"),
        ),
        "artifacts_dir",
    ],
)
def test_a_retry_runs_only_the_failed_node_and_its_skipped_children(
    tmp_path: Path, keeper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Airflow 3.3 the state lives in the task state store; without one (3.1/3.2), in artifacts_dir."""
    artifacts_dir = None
    if keeper == "artifacts_dir":
        # Airflow < 3.3 as the operator sees it: no task state store in the context.
        monkeypatch.setattr(task_state, "has_task_state_store", lambda: False)
        monkeypatch.setattr(retry_from_failure, "has_task_state_store", lambda: False)
        artifacts_dir = str(tmp_path / "artifacts")
    project = copy_project(tmp_path / "project")
    _add_flaky_models(project)
    warehouse = tmp_path / "retry.duckdb"
    tries: list[int] = []

    def fix_the_cause(context: Any) -> None:
        """Between the tries: make ``flaky`` buildable, as an operator fixing the data would."""
        tries.append(int(context["ti"].try_number))
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create table main.retry_flag as select 1 as ok")

    with DAG("dbt_retry_from_failure", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        DbtBuildOperator(
            task_id="build",
            project_dir=str(project),
            env={"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
            select=["+flaky+"],
            retry_from_failure=True,
            artifacts_dir=artifacts_dir,
            push_artifacts=["run_results.json"],
            retries=1,
            retry_delay=timedelta(seconds=0),
            on_retry_callback=fix_the_cause,
        )
    result = run_dag(dag)
    assert result.state("build") == "success", result.errors("build")
    assert result.try_number("build") == 2
    assert tries == [1]
    # The second try's own run_results: only the failed node and the node skipped because of it.
    second = decode_artifact(result.xcom("build", "run_results"))
    statuses = {r["unique_id"]: r["status"] for r in second["results"]}
    assert statuses == {FLAKY: "success", FLAKY_CHILD: "success"}
    assert result.xcom("build", "return_value")["nodes"] == 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from main.flaky_child").fetchone() == (10,)


def _postgres_project(root: Path) -> Path:
    project = root / "pg_assets"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: pg_assets\nversion: '1.0'\nconfig-version: 2\nprofile: pg_assets\n"
    )
    (project / "models" / "orders_base.sql").write_text(
        "{{ config(materialized='table') }}\nselect 1 as id\n"
    )
    (project / "models" / "orders_view.sql").write_text("select * from {{ ref('orders_base') }}\n")
    (project / "models" / "not_built.sql").write_text(
        "{{ config(materialized='ephemeral') }}\nselect 2 as id\n"
    )
    return project


@pytest.mark.usefixtures("airflow_db")
def test_asset_events_for_built_models_with_postgres_uris(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URIs are the postgres provider's (validated by it, as it is installed) with the real host."""
    from airflow.models.asset import AssetAliasModel, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    database = postgres_server.create_database("dbt_assets")
    connection = postgres_server.airflow_connection(database)
    monkeypatch.setenv("AIRFLOW_CONN_ASSETS_PG", json.dumps(connection))
    project = _postgres_project(tmp_path)
    with DAG("dbt_asset_events", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        DbtBuildOperator(
            task_id="build",
            project_dir=str(project),
            profile_conn_id="assets_pg",
            asset_alias="dbt_pg_models",
            install_deps=False,
        )
    result = run_dag(dag)
    assert result.state("build") == "success", result.errors("build")
    base = f"postgres://{postgres_server.host}:{postgres_server.port}/{database}/public"
    with create_session() as session:
        uris = session.scalars(
            select(AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == "dbt_asset_events", AssetEvent.source_run_id == result.run_id)
        ).all()
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == "dbt_pg_models"))
        assert alias is not None
        alias_uris = {asset.uri for asset in alias.assets}
    assert sorted(uris) == [f"{base}/orders_base", f"{base}/orders_view"]
    assert alias_uris == set(uris)
