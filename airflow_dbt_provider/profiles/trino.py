"""Trino (and Starburst): Airflow's ``trino`` connection.

No password → ``method: none``; a Password → ``method: ldap`` over HTTPS (Trino only accepts
passwords over TLS); extra ``auth: jwt`` with ``jwt__token`` → ``method: jwt``. The catalog is extra
``catalog`` (default ``hive``, as in the Trino provider), the schema the Schema field.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, as_int, pick

TRINO_EXTRAS = (
    "session_properties",
    "client_tags",
    "timezone",
    "roles",
    "retries",
    "prepared_statements_enabled",
)


def _auth(reader: ConnectionReader) -> dict[str, Any]:
    conn = reader.conn
    auth = reader.extra_get("auth")
    if auth == "jwt":
        token = reader.require(reader.extra_get("jwt__token"), "extra 'jwt__token'")
        return {"method": "jwt", "jwt_token": Secret(token)}
    if auth not in (None, "", "ldap", "basic"):
        raise reader.error(
            f"extra auth={auth!r} is not mapped (supported: none, password/ldap, jwt); "
            "use a 'dbt_target' connection carrying the whole dbt-trino target instead."
        )
    if conn.password:
        return {"method": "ldap", "password": Secret(conn.password)}
    scheme = reader.extra_get("protocol", default="http")
    return {"method": "none", "http_scheme": scheme}


def trino_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-trino target from an Airflow ``trino`` connection."""
    reader = ConnectionReader(conn, "trino")
    output: dict[str, Any] = {
        "type": "trino",
        "host": reader.require(conn.host, "the Host field"),
        "port": as_int(reader, conn.port or 8080, "Port"),
        "user": reader.require(conn.login, "the Login field (the Trino user)"),
        "database": reader.extra_get("catalog", default="hive"),
        "schema": reader.require(conn.schema or reader.extra_get("schema"), "the Schema field"),
    }
    output.update(_auth(reader))
    verify = reader.extra_get("verify")
    if verify is not None:
        # The Trino provider's ``verify`` is a bool, "true"/"false", or a CA bundle path.
        lowered = str(verify).lower()
        output["cert"] = {"true": True, "false": False}.get(lowered, verify)
    output.update(pick(reader.extra, TRINO_EXTRAS))
    return output
