"""Databricks: Airflow's ``databricks`` connection (personal access token or OAuth M2M).

The token is the Password field or extra ``token``; with extra ``client_id``/``client_secret``
(or Login/Password and extra ``service_principal_oauth``) it is OAuth machine-to-machine. The SQL
warehouse / cluster ``http_path`` and the ``catalog``/``schema`` come from the extra (Schema field
also works for the schema).
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, pick

DATABRICKS_EXTRAS = ("connect_retries", "connect_timeout", "session_properties", "connection_parameters")


def _host(raw: str) -> str:
    # dbt-databricks wants a bare hostname; the Airflow connection often holds a URL.
    return raw.removeprefix("https://").removeprefix("http://").rstrip("/")


def databricks_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-databricks target from an Airflow ``databricks`` connection."""
    reader = ConnectionReader(conn, "databricks")
    output: dict[str, Any] = {
        "type": "databricks",
        "host": _host(str(reader.require(conn.host or reader.extra_get("host"), "the Host field"))),
        "http_path": reader.require(
            reader.extra_get("http_path", "sql_endpoint_http_path"),
            "extra 'http_path'",
            "Copy it from the SQL warehouse's connection details.",
        ),
        "schema": reader.require(conn.schema or reader.extra_get("schema"), "the schema (extra 'schema')"),
    }
    if catalog := reader.extra_get("catalog"):
        output["catalog"] = catalog
    client_id = reader.extra_get("client_id")
    if not client_id and reader.extra_get("service_principal_oauth"):
        client_id = conn.login
    if client_id:
        output["auth_type"] = "oauth"
        output["client_id"] = client_id
        output["client_secret"] = Secret(
            reader.require(reader.extra_get("client_secret") or conn.password, "the OAuth client secret")
        )
    else:
        token = reader.require(
            reader.extra_get("token") or conn.password,
            "an access token",
            "Put a personal access token in the Password field (or extra 'token').",
        )
        output["token"] = Secret(token)
    output.update(pick(reader.extra, DATABRICKS_EXTRAS))
    return output
