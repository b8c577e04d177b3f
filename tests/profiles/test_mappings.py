"""Airflow connection → dbt target: fields, secrets moved to env, overrides and clear errors."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import Connection
from support.dbt_adapters import KeyPair

from airflow_dbt_provider.profiles import (
    MAPPINGS,
    DbtTarget,
    ProfileMappingError,
    target_from_connection,
    write_profiles_dir,
)

SECRET = "s3cr3t-Value_42"


def conn(conn_type: str, conn_id: str = "my_conn", **fields: Any) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(conn_id=conn_id, conn_type=conn_type, extra=json.dumps(extra or {}), **fields)


def build(connection: Connection, **kwargs: Any) -> DbtTarget:
    return target_from_connection(connection, profile_name="jaffle_shop", **kwargs)


def assert_no_secret_outside_env(target: DbtTarget, *secrets: str) -> None:
    """The secrets are in env, and nowhere in the target, its YAML or its repr."""
    for secret in secrets:
        assert secret in target.env.values()
        # A multi-line secret (a PEM key) is escaped in JSON/repr, so look for its longest line too.
        probes = {secret, max(secret.splitlines(), key=len)}
        for text in (json.dumps(target.output), target.profiles_yml(), repr(target), str(target)):
            assert not any(probe in text for probe in probes)


# -- postgres / redshift ----------------------------------------------------------------------------


def test_postgres_from_a_connection_uri() -> None:
    c = Connection.from_uri(
        f"postgresql://etl:{SECRET}@db.internal:5433/warehouse?sslmode=require", conn_id="pg"
    )
    target = build(c)
    assert target.output == {
        "type": "postgres",
        "host": "db.internal",
        "port": 5433,
        "user": "etl",
        "password": "{{ env_var('DBT_ENV_SECRET_ADP_PASSWORD') }}",
        "dbname": "warehouse",
        "schema": "public",
        "sslmode": "require",
    }
    assert dict(target.env) == {"DBT_ENV_SECRET_ADP_PASSWORD": SECRET}
    assert_no_secret_outside_env(target, SECRET)


def test_postgres_extras_and_dbschema() -> None:
    c = conn(
        "postgres",
        host="h",
        login="u",
        password=SECRET,
        schema="db",
        extra={"dbschema": "analytics", "keepalives_idle": "30", "connect_timeout": 5, "unrelated": 1},
    )
    out = build(c).output
    assert (out["port"], out["schema"], out["keepalives_idle"], out["connect_timeout"]) == (
        5432,
        "analytics",
        30,
        5,
    )
    assert "unrelated" not in out


@pytest.mark.parametrize(
    ("missing", "label"),
    [
        ("host", "the Host field"),
        ("login", "the Login field"),
        ("password", "the Password field"),
        ("schema", "the database name"),
    ],
)
def test_postgres_missing_field_names_field_and_connection(missing: str, label: str) -> None:
    fields = {"host": "h", "login": "u", "password": SECRET, "schema": "db"}
    fields.pop(missing)
    with pytest.raises(ProfileMappingError) as err:
        build(conn("postgres", conn_id="warehouse_pg", **fields))
    assert label in str(err.value)
    assert "'warehouse_pg'" in str(err.value)
    assert SECRET not in str(err.value)


def test_postgres_bad_port_is_explained() -> None:
    c = conn("postgres", host="h", login="u", password="p", schema="db", extra={"keepalives_idle": "soon"})
    with pytest.raises(ProfileMappingError, match="keepalives_idle must be an integer"):
        build(c)


def test_redshift_password_auth_and_iam_refused() -> None:
    c = conn("redshift", host="rs", login="u", password=SECRET, schema="dev")
    target = build(c)
    assert target.output["method"] == "database"
    assert target.output["port"] == 5439
    assert_no_secret_outside_env(target, SECRET)
    with pytest.raises(ProfileMappingError, match=r"IAM authentication is not mapped.*dbt_target"):
        build(conn("redshift", host="rs", login="u", password="p", schema="dev", extra={"iam": True}))


# -- duckdb ------------------------------------------------------------------------------------------


def test_duckdb_path_extensions_settings_and_secrets(tmp_path: Path) -> None:
    c = conn(
        "duckdb",
        extra={
            "path": str(tmp_path / "w.duckdb"),
            "extensions": ["httpfs", "parquet"],
            "settings": {"threads": 2, "s3_secret_access_key": SECRET},
            "secrets": [{"type": "s3", "key_id": "AKIA", "secret": "another-" + SECRET}],
        },
    )
    target = build(c)
    assert target.output["path"] == str(tmp_path / "w.duckdb")
    assert target.output["extensions"] == ["httpfs", "parquet"]
    assert target.output["settings"]["threads"] == 2
    assert target.output["secrets"][0]["key_id"] == "AKIA"
    assert_no_secret_outside_env(target, SECRET, "another-" + SECRET)


def test_duckdb_defaults_host_as_path_and_motherduck_token() -> None:
    assert build(conn("duckdb")).output == {"type": "duckdb", "path": ":memory:", "schema": "main"}
    target = build(conn("duckdb", host="md:analytics", password=SECRET, schema="marts"))
    assert (target.output["path"], target.output["schema"]) == ("md:analytics", "marts")
    assert_no_secret_outside_env(target, SECRET)
    with pytest.raises(ProfileMappingError, match="'extensions' must be a JSON list"):
        build(conn("duckdb", extra={"extensions": "httpfs"}))


# -- snowflake ---------------------------------------------------------------------------------------


def test_snowflake_password(key_pair: KeyPair) -> None:
    c = conn(
        "snowflake",
        login="U",
        password=SECRET,
        schema="S",
        extra={"account": "ab123", "region": "eu-west-1", "database": "D", "warehouse": "W", "role": "R"},
    )
    target = build(c)
    assert target.output["account"] == "ab123.eu-west-1"
    assert {k: target.output[k] for k in ("user", "database", "schema", "warehouse", "role")} == {
        "user": "U",
        "database": "D",
        "schema": "S",
        "warehouse": "W",
        "role": "R",
    }
    assert_no_secret_outside_env(target, SECRET)


@pytest.mark.parametrize("encoding", ["pem", "base64"])
def test_snowflake_private_key_content(key_pair: KeyPair, encoding: str) -> None:
    content = key_pair.pem if encoding == "pem" else base64.b64encode(key_pair.pem.encode()).decode()
    c = conn(
        "snowflake",
        login="U",
        schema="S",
        extra={"account": "a", "database": "D", "private_key_content": content},
    )
    target = build(c)
    assert "password" not in target.output
    assert target.env["DBT_ENV_SECRET_ADP_PRIVATE_KEY"] == key_pair.pem.strip()
    assert_no_secret_outside_env(target, key_pair.pem.strip())


def test_snowflake_key_file_with_passphrase_and_errors(tmp_path: Path) -> None:
    c = conn(
        "snowflake",
        login="U",
        password=SECRET,
        schema="S",
        extra={"account": "a", "database": "D", "private_key_file": "/keys/rsa.p8"},
    )
    target = build(c)
    assert target.output["private_key_path"] == "/keys/rsa.p8"
    assert "password" not in target.output
    assert target.env == {"DBT_ENV_SECRET_ADP_PRIVATE_KEY_PASSPHRASE": SECRET}
    bad = conn(
        "snowflake",
        login="U",
        schema="S",
        extra={"account": "a", "database": "D", "private_key_content": "not a key"},
    )
    with pytest.raises(ProfileMappingError, match="neither PEM text nor base64-encoded PEM"):
        build(bad)
    with pytest.raises(ProfileMappingError, match="extra 'account'"):
        build(conn("snowflake", login="U", password="p", schema="S", extra={"database": "D"}))


def test_snowflake_oauth_moves_client_secret_and_refresh_token() -> None:
    c = conn(
        "snowflake",
        login="client-id",
        password=SECRET,
        schema="S",
        extra={"account": "a", "database": "D", "authenticator": "oauth", "refresh_token": "rt-" + SECRET},
    )
    target = build(c)
    assert target.output["oauth_client_id"] == "client-id"
    assert "user" not in target.output
    assert_no_secret_outside_env(target, SECRET, "rt-" + SECRET)


# -- bigquery ----------------------------------------------------------------------------------------


def test_bigquery_methods(key_pair: KeyPair) -> None:
    keyfile = {
        "type": "service_account",
        "project_id": "proj",
        "private_key": key_pair.pem,
        "client_email": "sa@proj.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    target = build(
        conn("google_cloud_platform", extra={"keyfile_dict": json.dumps(keyfile), "dataset": "marts"})
    )
    assert (target.output["method"], target.output["project"], target.output["dataset"]) == (
        "service-account-json",
        "proj",
        "marts",
    )
    assert target.output["keyfile_json"]["client_email"] == "sa@proj.iam.gserviceaccount.com"
    assert_no_secret_outside_env(target, key_pair.pem)
    legacy = {
        "extra__google_cloud_platform__key_path": "/k.json",
        "extra__google_cloud_platform__project": "p",
        "dataset": "d",
    }
    assert build(conn("google_cloud_platform", extra=legacy)).output["method"] == "service-account"
    assert (
        build(conn("google_cloud_platform", extra={"project": "p", "dataset": "d"})).output["method"]
        == "oauth"
    )


def test_bigquery_errors() -> None:
    with pytest.raises(ProfileMappingError, match="BigQuery dataset"):
        build(conn("google_cloud_platform", extra={"project": "p"}))
    with pytest.raises(ProfileMappingError, match="'keyfile_dict' is not valid JSON"):
        build(conn("google_cloud_platform", extra={"keyfile_dict": "{oops", "dataset": "d"}))


# -- databricks / trino ------------------------------------------------------------------------------


def test_databricks_token_and_oauth() -> None:
    c = conn(
        "databricks",
        host="https://adb-1.azuredatabricks.net/",
        password=SECRET,
        extra={"http_path": "/sql/1.0/warehouses/x", "catalog": "main", "schema": "s"},
    )
    target = build(c)
    assert (target.output["host"], target.output["catalog"]) == ("adb-1.azuredatabricks.net", "main")
    assert_no_secret_outside_env(target, SECRET)
    m2m = conn(
        "databricks",
        host="dbc.cloud.databricks.com",
        login="sp-id",
        password=SECRET,
        extra={"http_path": "/p", "schema": "s", "service_principal_oauth": True},
    )
    target = build(m2m)
    assert (target.output["auth_type"], target.output["client_id"]) == ("oauth", "sp-id")
    assert "token" not in target.output
    assert_no_secret_outside_env(target, SECRET)
    with pytest.raises(ProfileMappingError, match=r"extra 'http_path'.*SQL warehouse"):
        build(conn("databricks", host="h", password="t", extra={"schema": "s"}))


def test_trino_methods() -> None:
    none = build(conn("trino", host="t", login="u", schema="s")).output
    assert (none["method"], none["database"], none["port"]) == ("none", "hive", 8080)
    ldap = build(
        conn(
            "trino",
            host="t",
            port=443,
            login="u",
            password=SECRET,
            schema="s",
            extra={"catalog": "ice", "verify": "/ca.pem"},
        )
    )
    assert (ldap.output["method"], ldap.output["cert"]) == ("ldap", "/ca.pem")
    assert_no_secret_outside_env(ldap, SECRET)
    with pytest.raises(ProfileMappingError, match="auth='kerberos' is not mapped"):
        build(conn("trino", host="t", login="u", schema="s", extra={"auth": "kerberos"}))


# -- generic -----------------------------------------------------------------------------------------


def test_generic_target_in_extra() -> None:
    target_json = {
        "type": "clickhouse",
        "host": "ch",
        "port": 8443,
        "schema": "analytics",
        "secure": True,
        "password": SECRET,
        "custom_settings": {"api_token": "tok-" + SECRET},
        "token": "{{ env_var('MY_OWN_TOKEN') }}",
    }
    target = build(conn("dbt_target", extra={"target": target_json}))
    assert target.output["secure"] is True
    assert target.output["token"] == "{{ env_var('MY_OWN_TOKEN') }}"  # a reference stays as written
    assert_no_secret_outside_env(target, SECRET, "tok-" + SECRET)


def test_generic_fields_directly_with_standard_fields_filling_in() -> None:
    c = conn(
        "dbt_target",
        host="pg",
        login="u",
        password=SECRET,
        schema="s",
        extra={"extra__dbt_target__adapter_type": "postgres", "dbname": "db", "host": "wins"},
    )
    out = build(c).output
    assert out == {
        "dbname": "db",
        "host": "wins",
        "type": "postgres",
        "user": "u",
        "schema": "s",
        "password": "{{ env_var('DBT_ENV_SECRET_ADP_PASSWORD') }}",
    }
    assert "adapter_type" not in out
    with pytest.raises(ProfileMappingError, match="dbt adapter type"):
        build(conn("dbt_target", extra={"target": {"host": "x"}}))


# -- the contract --------------------------------------------------------------------------------------


def test_unknown_conn_type_lists_supported_types_and_suggests_dbt_target() -> None:
    with pytest.raises(ProfileMappingError) as err:
        build(conn("mysql", conn_id="shop_db", host="h"))
    message = str(err.value)
    assert "'shop_db'" in message
    assert "'mysql'" in message
    assert all(conn_type in message for conn_type in MAPPINGS)
    assert "'dbt_target'" in message


def test_overrides_merge_move_secrets_and_remove_keys() -> None:
    c = conn("postgres", host="h", login="u", password="p1", schema="db", extra={"sslmode": "require"})
    target = build(
        c,
        target_name="prod",
        overrides={"schema": "ci_123", "threads": "8", "sslmode": None, "password": SECRET},
    )
    assert (target.output["schema"], target.output["threads"]) == ("ci_123", 8)
    assert "sslmode" not in target.output
    assert target.env == {"DBT_ENV_SECRET_ADP_PASSWORD": SECRET}
    profile = yaml.safe_load(target.profiles_yml())
    assert profile["jaffle_shop"]["target"] == "prod"
    assert profile["jaffle_shop"]["outputs"]["prod"] == target.output


def test_write_profiles_dir_is_private(tmp_path: Path) -> None:
    target = build(conn("postgres", host="h", login="u", password=SECRET, schema="db"))
    directory = write_profiles_dir(target, tmp_path)
    path = directory / "profiles.yml"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET not in path.read_text()
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(target.profiles_yml())
