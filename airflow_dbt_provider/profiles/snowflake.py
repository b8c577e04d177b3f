"""Snowflake: Airflow's ``snowflake`` connection (password, key pair, or OAuth token).

Key pair auth follows the Snowflake provider: extra ``private_key_content`` (PEM text, or the
base64 of it as newer provider versions expect) or ``private_key_file``; the Password field is
then the key's passphrase. dbt-snowflake reads a PEM ``private_key`` directly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, pick

SNOWFLAKE_EXTRAS = (
    "authenticator",
    "query_tag",
    "client_session_keep_alive",
    "connect_retries",
    "connect_timeout",
    "retry_on_database_errors",
    "retry_all",
    "reuse_connections",
    "insecure_mode",
    "host",
    "port",
    "protocol",
    "proxy_host",
    "proxy_port",
    "token",
)


def _pem_text(reader: ConnectionReader, content: str) -> str:
    """PEM text from ``private_key_content``: as given, or decoded from the base64 of the PEM."""
    content = content.strip()
    if content.startswith("-----"):
        return content
    try:
        decoded = base64.b64decode(content, validate=False).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if not decoded.startswith("-----"):
        raise reader.error(
            "extra 'private_key_content' is neither PEM text nor base64-encoded PEM; "
            "set it to the key file's content (optionally base64-encoded)."
        )
    return decoded


def _account(reader: ConnectionReader) -> str:
    account = reader.require(reader.extra_get("account"), "extra 'account' (the account identifier)")
    region = reader.extra_get("region")
    # The Snowflake provider builds ``<account>.<region>`` when a region is given; dbt wants the same.
    return f"{account}.{region}" if region and "." not in str(account) else str(account)


def _auth(reader: ConnectionReader, authenticator: str | None) -> dict[str, Any]:
    """The auth fields: OAuth (Login = client id, Password = client secret), key pair, or password."""
    conn = reader.conn
    if authenticator == "oauth":
        refresh_token = reader.require(reader.extra_get("refresh_token", "token"), "extra 'refresh_token'")
        auth: dict[str, Any] = {"token": Secret(refresh_token)}
        if conn.login:
            auth["oauth_client_id"] = conn.login
        if conn.password:
            auth["oauth_client_secret"] = Secret(conn.password)
        return auth
    if authenticator not in ("jwt", "programmatic_access_token"):
        reader.require(conn.login, "the Login field (the Snowflake user)")
    auth = {"user": conn.login} if conn.login else {}
    key_content = reader.extra_get("private_key_content")
    key_file = reader.extra_get("private_key_file")
    if key_content and key_file:
        raise reader.error("set only one of extra 'private_key_content' and 'private_key_file'")
    if key_content:
        auth["private_key"] = Secret(_pem_text(reader, str(key_content)))
    elif key_file:
        auth["private_key_path"] = key_file
    if key_content or key_file:
        if conn.password:
            auth["private_key_passphrase"] = Secret(conn.password)
    elif conn.password:
        auth["password"] = Secret(conn.password)
    return auth


def snowflake_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-snowflake target from an Airflow ``snowflake`` connection."""
    reader = ConnectionReader(conn, "snowflake")
    output: dict[str, Any] = {
        "type": "snowflake",
        "account": _account(reader),
        "database": reader.require(reader.extra_get("database"), "extra 'database'"),
        "schema": reader.require(conn.schema or reader.extra_get("schema"), "the Schema field"),
    }
    for key in ("warehouse", "role"):
        if value := reader.extra_get(key):
            output[key] = value
    output.update(pick(reader.extra, SNOWFLAKE_EXTRAS))
    output.update(_auth(reader, output.get("authenticator")))
    if "token" in output:
        output["token"] = Secret(str(output["token"]))
    return output
