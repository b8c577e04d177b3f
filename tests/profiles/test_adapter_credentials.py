"""Every generated target is accepted by its adapter's own credentials class, in the adapters venv.

Snowflake, BigQuery, Redshift, Databricks and Trino cannot be reached from here, so the proof is
dbt itself: the profile is rendered with the secrets from ``env`` and loaded through dbt's
profile loader into the adapter's credentials class, and then the adapter code that consumes
those credentials runs offline (key parsing, Google credentials, auth objects). Postgres and
the generic type are checked here too. (Databricks OAuth M2M is covered by the mapping tests only:
dbt-databricks exchanges the client secret for a token while it builds the credentials, which
needs the workspace.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Connection
from support.dbt_adapters import KeyPair, check_in_adapters_venv

from airflow_dbt_provider.profiles import target_from_connection

pytestmark = pytest.mark.timeout(900)

PASSWORD = "pw-Adapt3rs!{{ not jinja }}"
BROKEN = "broken_redshift_without_host"
TOKEN = "dapi-0123456789abcdef"


def _conn(conn_type: str, **fields: Any) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(
        conn_id=f"{conn_type}_case", conn_type=conn_type, extra=json.dumps(extra or {}), **fields
    )


def _service_account(key_pair: KeyPair) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "acme-analytics",
        "private_key_id": "0123abcd",
        "private_key": key_pair.pem,
        "client_email": "dbt-runner@acme-analytics.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _cases(key_pair: KeyPair, tmp: Path) -> dict[str, Connection]:
    keyfile = tmp / "sa.json"
    keyfile.write_text(json.dumps(_service_account(key_pair)))
    pem_file = tmp / "rsa_key.p8"
    pem_file.write_text(key_pair.encrypted_pem)
    pem_b64 = base64.b64encode(key_pair.pem.encode()).decode()
    return {
        "postgres": _conn(
            "postgres",
            host="db.internal",
            port=5433,
            login="etl",
            password=PASSWORD,
            schema="warehouse",
            extra={"dbschema": "analytics", "sslmode": "require", "keepalives_idle": "30"},
        ),
        "snowflake_password": _conn(
            "snowflake",
            login="ETL_USER",
            password=PASSWORD,
            schema="ANALYTICS",
            extra={
                "account": "xy12345",
                "region": "eu-west-1",
                "warehouse": "TRANSFORMING",
                "database": "RAW",
                "role": "TRANSFORMER",
            },
        ),
        "snowflake_key_content_b64": _conn(
            "snowflake",
            login="ETL_USER",
            schema="ANALYTICS",
            extra={"account": "acme-xy12345", "database": "RAW", "private_key_content": pem_b64},
        ),
        "snowflake_key_file_passphrase": _conn(
            "snowflake",
            login="ETL_USER",
            password=key_pair.passphrase,
            schema="ANALYTICS",
            extra={"account": "acme-xy12345", "database": "RAW", "private_key_file": str(pem_file)},
        ),
        "snowflake_oauth": _conn(
            "snowflake",
            login="client-id",
            password="client-secret",
            schema="ANALYTICS",
            extra={
                "account": "acme-xy12345",
                "database": "RAW",
                "authenticator": "oauth",
                "refresh_token": "refresh-me",
            },
        ),
        "bigquery_keyfile_dict": _conn(
            "google_cloud_platform",
            extra={
                "keyfile_dict": json.dumps(_service_account(key_pair)),
                "dataset": "marts",
                "location": "EU",
            },
        ),
        "bigquery_key_path": _conn(
            "google_cloud_platform",
            extra={"key_path": str(keyfile), "project": "acme-analytics", "dataset": "marts"},
        ),
        "bigquery_adc": _conn(
            "google_cloud_platform", extra={"project": "acme-analytics", "dataset": "marts"}
        ),
        "redshift": _conn(
            "redshift",
            host="cluster.abc.eu-west-1.redshift.amazonaws.com",
            login="etl",
            password=PASSWORD,
            schema="dev",
            extra={"dbschema": "analytics", "sslmode": "verify-full"},
        ),
        "databricks_token": _conn(
            "databricks",
            host="https://adb-123.4.azuredatabricks.net/",
            password=TOKEN,
            extra={"http_path": "/sql/1.0/warehouses/abc", "catalog": "main", "schema": "analytics"},
        ),
        "trino_none": _conn(
            "trino",
            host="trino.internal",
            port=8080,
            login="etl",
            schema="analytics",
            extra={"catalog": "iceberg"},
        ),
        "trino_ldap": _conn(
            "trino",
            host="trino.internal",
            port=443,
            login="etl",
            password=PASSWORD,
            schema="analytics",
            extra={"catalog": "iceberg", "verify": "false"},
        ),
        "trino_jwt": _conn(
            "trino",
            host="trino.internal",
            port=443,
            login="etl",
            schema="analytics",
            extra={"auth": "jwt", "jwt__token": "eyJhbGciOi.jwt.token"},
        ),
        "generic_clickhouse_style_postgres": _conn(
            "dbt_target",
            host="db.internal",
            login="etl",
            password=PASSWORD,
            extra={
                "target": {
                    "type": "postgres",
                    "port": 5432,
                    "dbname": "warehouse",
                    "schema": "generic",
                    "threads": 4,
                }
            },
        ),
    }


@pytest.fixture(scope="module")
def results(adapters_python: Path, key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("adapter-cases")
    payload = []
    for name, conn in _cases(key_pair, tmp).items():
        target = target_from_connection(conn, profile_name="acme", target_name="prod")
        text = json.dumps(target.output)
        assert not any(max(secret.splitlines(), key=len) in text for secret in target.env.values()), name
        payload.append(
            {
                "name": name,
                "profile_name": "acme",
                "target_name": "prod",
                "output": target.output,
                "env": dict(target.env),
            }
        )
    # A target dbt must refuse (Redshift without a host), checked in the same run: the check can fail.
    broken = {"type": "redshift", "user": "etl", "port": 5439, "dbname": "dev", "schema": "s"}
    payload.append(
        {"name": BROKEN, "profile_name": "acme", "target_name": "prod", "output": broken, "env": {}}
    )
    return check_in_adapters_venv(adapters_python, payload)


EXPECTED: dict[str, tuple[str, dict[str, Any], Callable[[str], bool]]] = {
    "postgres": (
        "PostgresCredentials",
        {
            "host": "db.internal",
            "port": 5433,
            "database": "warehouse",
            "schema": "analytics",
            "sslmode": "require",
            "keepalives_idle": 30,
        },
        lambda d: d == "credentials built",
    ),
    "snowflake_password": (
        "SnowflakeCredentials",
        {
            "account": "xy12345.eu-west-1",
            "user": "ETL_USER",
            "database": "RAW",
            "warehouse": "TRANSFORMING",
            "role": "TRANSFORMER",
            "schema": "ANALYTICS",
        },
        lambda d: "password" in d and "user" in d,
    ),
    "snowflake_key_content_b64": (
        "SnowflakeCredentials",
        {"account": "acme-xy12345", "user": "ETL_USER"},
        lambda d: d.startswith("private key loaded"),
    ),
    "snowflake_key_file_passphrase": (
        "SnowflakeCredentials",
        {"account": "acme-xy12345"},
        lambda d: d.startswith("private key loaded"),
    ),
    "snowflake_oauth": (
        "SnowflakeCredentials",
        {"account": "acme-xy12345", "user": None},
        lambda d: d.startswith("oauth"),
    ),
    "bigquery_keyfile_dict": (
        "BigQueryCredentials",
        {"method": "service-account-json", "database": "acme-analytics", "schema": "marts", "location": "EU"},
        lambda d: d == "Credentials:dbt-runner@acme-analytics.iam.gserviceaccount.com",
    ),
    "bigquery_key_path": (
        "BigQueryCredentials",
        {"method": "service-account", "database": "acme-analytics"},
        lambda d: d.endswith("dbt-runner@acme-analytics.iam.gserviceaccount.com"),
    ),
    "bigquery_adc": (
        "BigQueryCredentials",
        {"method": "oauth", "schema": "marts"},
        lambda d: "application default" in d,
    ),
    "redshift": (
        "RedshiftCredentials",
        {
            "host": "cluster.abc.eu-west-1.redshift.amazonaws.com",
            "port": 5439,
            "database": "dev",
            "schema": "analytics",
            "method": "database",
        },
        lambda d: d == "credentials built",
    ),
    "databricks_token": (
        "DatabricksCredentials",
        {
            "host": "adb-123.4.azuredatabricks.net",
            "http_path": "/sql/1.0/warehouses/abc",
            "database": "main",
            "schema": "analytics",
        },
        lambda d: d == "validate_creds ok",
    ),
    "trino_none": (
        "TrinoNoneCredentials",
        {"method": "none", "database": "iceberg", "user": "etl"},
        lambda d: d.endswith(":http"),
    ),
    "trino_ldap": (
        "TrinoLdapCredentials",
        {"method": "ldap", "port": 443, "cert": False},
        lambda d: d.startswith("BasicAuthentication:https"),
    ),
    "trino_jwt": ("TrinoJwtCredentials", {"method": "jwt"}, lambda d: d.startswith("JWTAuthentication")),
    "generic_clickhouse_style_postgres": (
        "PostgresCredentials",
        {"host": "db.internal", "user": "etl", "database": "warehouse", "schema": "generic"},
        lambda d: d == "credentials built",
    ),
}


#: Cases whose connection holds no secret at all (a key file path is not a secret value).
WITHOUT_SECRETS = frozenset({"trino_none", "bigquery_adc", "bigquery_key_path"})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_accepts_generated_target(results: dict, name: str) -> None:
    result = results[name]
    assert result["ok"], result["error"]
    credentials_class, keys, deep_ok = EXPECTED[name]
    assert result["credentials_class"] == credentials_class
    shown = result["connection_keys"]
    assert {k: shown.get(k) for k in keys} == keys
    assert deep_ok(result["deep_check"]), result["deep_check"]
    # Every secret went through env and reached the credentials object.
    assert bool(result["secrets_delivered"]) == (name not in WITHOUT_SECRETS)
    assert all(result["secrets_delivered"].values()), result["secrets_delivered"]


def test_dbt_rejects_a_broken_target(results: dict) -> None:
    """The check can fail: a Redshift target without a host is refused by dbt-redshift."""
    result = results[BROKEN]
    assert not result["ok"]
    assert "host" in result["error"]
