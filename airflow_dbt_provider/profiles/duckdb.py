"""DuckDB (and MotherDuck): a ``duckdb`` connection whose extra carries dbt-duckdb's settings.

The database file is extra ``path``, else the Host field (where the community DuckDB provider
keeps it), else an in-memory database. ``extensions``, ``settings``, ``attach``, ``secrets``… pass
through as dbt-duckdb defines them. A Password is taken as a MotherDuck token.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, pick

#: Extras passed through to dbt-duckdb unchanged (secrets inside them are still moved to env).
DUCKDB_EXTRAS = (
    "database",
    "extensions",
    "settings",
    "attach",
    "secrets",
    "external_root",
    "config_options",
    "filesystems",
    "plugins",
    "module_paths",
    "use_credential_provider",
    "disable_transactions",
    "keep_open",
    "retries",
)


def duckdb_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-duckdb target from a ``duckdb`` connection."""
    reader = ConnectionReader(conn, "duckdb")
    extra = reader.extra
    output: dict[str, Any] = {
        "type": "duckdb",
        "path": reader.extra_get("path") or conn.host or ":memory:",
        "schema": conn.schema or reader.extra_get("schema", default="main"),
    }
    output.update(pick(extra, DUCKDB_EXTRAS))
    for key in ("extensions", "attach", "secrets", "filesystems", "plugins", "module_paths"):
        if key in output and not isinstance(output[key], list):
            raise reader.error(f"extra {key!r} must be a JSON list, got {type(output[key]).__name__}")
    if "settings" in output and not isinstance(output["settings"], dict):
        raise reader.error("extra 'settings' must be a JSON object of DuckDB settings")
    if conn.password:
        output["settings"] = {**output.get("settings", {}), "motherduck_token": Secret(conn.password)}
    return output
