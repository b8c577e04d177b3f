"""dbt's own profile loader accepts our postgres/duckdb targets; the dbt_target hook works end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import Connection

from airflow_dbt_provider.hooks.dbt_target import DbtTargetHook
from airflow_dbt_provider.profiles import DbtTarget, ProfileMappingError, target_from_connection
from airflow_dbt_provider.profiles.validate import validate_target

SECRET = "12345"  # numeric on purpose: dbt's native rendering would turn a plain env_var into an int


def test_postgres_target_becomes_postgres_credentials() -> None:
    conn = Connection(
        conn_id="pg",
        conn_type="postgres",
        host="h",
        login="u",
        password=SECRET,
        schema="db",
        extra=json.dumps({"dbschema": "an", "sslmode": "prefer"}),
    )
    creds = validate_target(target_from_connection(conn, profile_name="p", overrides={"threads": 4}))
    assert type(creds).__name__ == "PostgresCredentials"
    assert (creds.host, creds.port, creds.user, creds.database, creds.schema) == ("h", 5432, "u", "db", "an")
    assert creds.password == SECRET  # delivered through env, and still a string


def test_duckdb_target_becomes_duckdb_credentials(tmp_path: Path) -> None:
    conn = Connection(
        conn_id="duck",
        conn_type="duckdb",
        extra=json.dumps(
            {
                "path": str(tmp_path / "x.duckdb"),
                "extensions": ["parquet"],
                "settings": {"s3_secret_access_key": SECRET},
            }
        ),
    )
    creds = validate_target(target_from_connection(conn, profile_name="p"))
    assert creds.path == str(tmp_path / "x.duckdb")
    assert creds.extensions == ["parquet"]
    assert creds.settings == {"s3_secret_access_key": SECRET}


def test_rejected_target_names_the_problem_without_the_secret() -> None:
    target = DbtTarget(
        "p",
        "t",
        {
            "type": "postgres",
            "host": "h",
            "user": "u",
            "port": "not-a-port",
            "password": "{{ env_var('DBT_ENV_SECRET_ADP_PASSWORD') }}",
            "dbname": "d",
            "schema": "s",
        },
        {"DBT_ENV_SECRET_ADP_PASSWORD": "hunter2-secret"},
    )
    with pytest.raises(ProfileMappingError) as err:
        validate_target(target)
    assert "not-a-port" in str(err.value)
    assert "hunter2-secret" not in str(err.value)


@pytest.fixture
def dbt_target_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    target = {
        "type": "postgres",
        "host": "db.internal",
        "port": 5432,
        "dbname": "w",
        "schema": "s",
        "user": "u",
    }
    conn = {"conn_type": "dbt_target", "password": "pw-" + SECRET, "extra": {"target": target}}
    monkeypatch.setenv("AIRFLOW_CONN_MY_DBT_TARGET", json.dumps(conn))
    return "my_dbt_target"


def test_hook_reads_the_target_from_an_airflow_connection(dbt_target_conn: str) -> None:
    hook = DbtTargetHook(dbt_target_conn_id=dbt_target_conn)
    target = hook.get_target("jaffle_shop", overrides={"schema": "ci"})
    assert (target.profile_name, target.output["type"], target.output["schema"]) == (
        "jaffle_shop",
        "postgres",
        "ci",
    )
    assert target.env == {"DBT_ENV_SECRET_ADP_PASSWORD": "pw-" + SECRET}
    ok, message = hook.test_connection()
    assert ok, message
    assert "postgres" in message
    assert SECRET not in message


def test_hook_test_connection_reports_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps({"conn_type": "dbt_target", "extra": {"host": "x"}}))
    ok, message = DbtTargetHook("broken").test_connection()
    assert not ok
    assert "dbt adapter type" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_NO_ADAPTER",
        json.dumps(
            {
                "conn_type": "dbt_target",
                "extra": {"target": {"type": "clickhouse", "host": "x", "schema": "s"}},
            }
        ),
    )
    ok, message = DbtTargetHook("no_adapter").test_connection()
    assert not ok
    assert "clickhouse" in message
