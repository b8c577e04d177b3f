"""Build dbt targets (profiles) from Airflow connections.

``target_from_connection`` picks the mapping for the connection's ``conn_type`` (one small module
per adapter family), applies overrides, and moves every secret out of the target into env vars
(see :mod:`airflow_dbt_provider.profiles._base` for why). The result's ``profiles_yml()`` is safe
to write to disk; its ``env`` must only ever go into the dbt invocation's environment.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_dbt_provider.profiles._base import (
    SECRET_ENV_PREFIX,
    ConnectionLike,
    DbtTarget,
    Mapper,
    ProfileMappingError,
    Secret,
    extract_secrets,
    is_secret_key,
)
from airflow_dbt_provider.profiles.bigquery import bigquery_target
from airflow_dbt_provider.profiles.databricks import databricks_target
from airflow_dbt_provider.profiles.duckdb import duckdb_target
from airflow_dbt_provider.profiles.generic import CONN_TYPE as GENERIC_CONN_TYPE
from airflow_dbt_provider.profiles.generic import generic_target
from airflow_dbt_provider.profiles.postgres import postgres_target, redshift_target
from airflow_dbt_provider.profiles.snowflake import snowflake_target
from airflow_dbt_provider.profiles.trino import trino_target

__all__ = [
    "GENERIC_CONN_TYPE",
    "MAPPINGS",
    "SECRET_ENV_PREFIX",
    "ConnectionLike",
    "DbtTarget",
    "ProfileMappingError",
    "target_from_connection",
    "write_profiles_dir",
]

#: Airflow ``conn_type`` → mapping. ``postgresql`` is what a ``postgresql://`` URI parses to.
MAPPINGS: dict[str, Mapper] = {
    "postgres": postgres_target,
    "postgresql": postgres_target,
    "redshift": redshift_target,
    "duckdb": duckdb_target,
    "snowflake": snowflake_target,
    "google_cloud_platform": bigquery_target,
    "gcpbigquery": bigquery_target,
    "databricks": databricks_target,
    "trino": trino_target,
    GENERIC_CONN_TYPE: generic_target,
}


def _mapping_for(conn: ConnectionLike) -> Mapper:
    conn_type = (conn.conn_type or "").lower()
    mapper = MAPPINGS.get(conn_type) or MAPPINGS.get(conn_type.replace("-", "_"))
    if mapper is None:
        conn_id = getattr(conn, "conn_id", None) or "<unnamed>"
        raise ProfileMappingError(
            f"Connection {conn_id!r} has conn_type {conn.conn_type!r}, which has no dbt profile mapping. "
            f"Supported conn types: {', '.join(sorted(MAPPINGS))}. For any other dbt adapter, use a "
            f"connection of type {GENERIC_CONN_TYPE!r} whose extra holds the whole dbt target, "
            'e.g. {"target": {"type": "clickhouse", "host": "...", "schema": "..."}}.'
        )
    return mapper


def _apply_overrides(output: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(output)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)  # None removes a key the mapping set
        elif is_secret_key(key) and isinstance(value, str):
            merged[key] = Secret(value)
        else:
            merged[key] = value
    return merged


def target_from_connection(
    conn: ConnectionLike,
    *,
    profile_name: str,
    target_name: str = "airflow",
    overrides: Mapping[str, Any] | None = None,
) -> DbtTarget:
    """Build the dbt target for ``conn``; secrets end up in ``env``, never in ``output``.

    ``overrides`` are merged over the mapped target (a ``None`` value removes a key), e.g.
    ``{"schema": "analytics", "threads": 8}``; secret keys in them are moved to ``env`` too.
    """
    if not profile_name:
        raise ProfileMappingError("profile_name must be the 'profile' of the dbt project (dbt_project.yml)")
    output = _mapping_for(conn)(conn)
    threads = getattr(conn, "extra_dejson", {}).get("threads")
    if threads is not None and "threads" not in output:
        output["threads"] = threads
    if overrides:
        output = _apply_overrides(output, overrides)
    if "threads" in output:
        try:
            output["threads"] = int(output["threads"])
        except (TypeError, ValueError):
            raise ProfileMappingError(f"threads must be an integer, got {output['threads']!r}") from None
    cleaned, env = extract_secrets(output)
    return DbtTarget(profile_name=profile_name, target_name=target_name, output=cleaned, env=env)


def write_profiles_dir(target: DbtTarget, parent: str | os.PathLike[str] | None = None) -> Path:
    """Write ``target.profiles_yml()`` into a new private directory (0700, file 0600) and return it.

    The file holds no secret, but it names hosts and users, and a shared temp dir is world
    readable; the caller removes the directory when the dbt invocation is over.
    """
    directory = Path(tempfile.mkdtemp(prefix="dbt-profile-", dir=parent))  # mkdtemp creates it 0700
    path = directory / "profiles.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(target.profiles_yml())
    return directory
