"""A DAG builds the example project on a real PostgreSQL with a profile from an Airflow connection.

Proves the whole path: ``AIRFLOW_CONN_*`` → ``target_from_connection`` → a private profiles dir
holding no secret → dbt on PostgreSQL → tables exist. Then it scans everything the run left
behind that a user or another tenant might read — task logs, stdout/stderr, XComs, dbt's log and
artifacts — for the password, and must find none.
"""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cloud_dags import run_dag
from support.postgres import PostgresServer

import airflow_dbt_provider.profiles as profiles_module
from airflow_dbt_provider.assets import built_assets
from airflow_dbt_provider.testing import __file__ as testing_init

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

PROJECT = Path(testing_init).parent / "jaffle_shop"
CONN_ID = "jaffle_pg_e2e"
DATABASE = "jaffle_profiles_e2e"


@pytest.fixture
def pg_connection(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    postgres_server.create_database(DATABASE)
    conn = {
        "conn_type": "postgres",
        "host": postgres_server.host,
        "port": postgres_server.port,
        "login": postgres_server.user,
        "password": postgres_server.password,
        "schema": DATABASE,
        "extra": {"dbschema": "analytics", "connect_timeout": 10},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return postgres_server


@pytest.fixture
def written_profiles(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records what each private profiles dir looked like when dbt got it (the operator removes it)."""
    seen: list[dict[str, Any]] = []
    real = profiles_module.write_profiles_dir

    def spy(target: Any, parent: Any = None) -> Path:
        directory = real(target, parent)
        path = directory / "profiles.yml"
        seen.append(
            {
                "dir_mode": stat.S_IMODE(directory.stat().st_mode),
                "file_mode": stat.S_IMODE(path.stat().st_mode),
                "text": path.read_text(),
                "entries": sorted(p.name for p in directory.iterdir()),
            }
        )
        return directory

    monkeypatch.setattr(profiles_module, "write_profiles_dir", spy)
    return seen


def _texts_under(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_dag_builds_jaffle_shop_on_postgres_and_leaks_no_password(
    airflow_db: Path,
    pg_connection: PostgresServer,
    written_profiles: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.sdk import DAG

    from airflow_dbt_provider.operators.dbt import DbtBuildOperator

    artifacts = tmp_path / "artifacts"
    with DAG(
        "profiles_postgres_e2e", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)
    ) as dag:
        DbtBuildOperator(
            task_id="build",
            project_dir=str(PROJECT),
            profile_conn_id=CONN_ID,
            artifacts_dir=str(artifacts),
            push_artifacts=["run_results.json"],
        )
    caplog.set_level("DEBUG")
    result = run_dag(dag)
    out, err = capfd.readouterr()
    assert result.state("build") == "success", out[-3000:] + err[-3000:]

    # The warehouse holds what dbt built: seeds in analytics_raw, staging views and mart tables.
    rows = pg_connection.execute(
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_schema like 'analytics%' order by 1, 2",
        DATABASE,
    )
    built = {(schema, name): kind for schema, name, kind in rows}
    assert built[("analytics", "customers")] == "BASE TABLE"
    assert built[("analytics", "orders")] == "BASE TABLE"
    assert built[("analytics", "stg_orders")] == "VIEW"
    assert ("analytics_raw", "raw_orders") in built
    assert pg_connection.execute("select count(*) from analytics.customers", DATABASE)[0][0] > 0

    # The profile dbt read: private, and without the password.
    (profile,) = written_profiles
    assert (profile["dir_mode"], profile["file_mode"], profile["entries"]) == (0o700, 0o600, ["profiles.yml"])
    assert pg_connection.password not in profile["text"]
    output = yaml.safe_load(profile["text"])["jaffle_shop"]["outputs"]["airflow"]
    assert output["password"] == "{{ env_var('DBT_ENV_SECRET_ADP_PASSWORD') }}"

    # Nothing the run left behind holds the password.
    xcoms = result.all_xcoms()
    assert {key for _, key, _ in xcoms} >= {"run_results", "return_value"}
    leftovers = {
        "task logs": caplog.text,
        "stdout/stderr": out + err,
        "xcoms": json.dumps(xcoms, default=str),
        "dbt log and artifacts": _texts_under(artifacts),
    }
    assert {"dbt.log", "manifest.json", "run_results.json"} <= {p.name for p in artifacts.iterdir()}
    # dbt's own output was captured, so the scan below looks at the run's real logs.
    assert "analytics.customers" in caplog.text + out
    for where, text in leftovers.items():
        assert text, f"nothing captured from {where}: the scan would prove nothing"
        assert pg_connection.password not in text, f"the password leaked into {where}"

    # The artifacts name the built relations as postgres:// Assets Airflow accepts.
    from airflow.sdk import Asset

    manifest = json.loads((artifacts / "manifest.json").read_text())
    run_results = json.loads((artifacts / "run_results.json").read_text())
    assets = built_assets(run_results, manifest, host=pg_connection.host, port=pg_connection.port)
    uris = {uri for _, uri in assets}
    prefix = f"postgres://{pg_connection.host}:{pg_connection.port}/{DATABASE}"
    assert f"{prefix}/analytics/customers" in uris
    assert f"{prefix}/analytics_raw/raw_orders" in uris
    assert all(Asset(uri=uri).uri == uri for uri in uris)
