"""The dbt profile a dbt Core task runs with: the user's ``profiles.yml``, or one built from an
Airflow connection (``profile_conn_id``) into a private directory that lives as long as the run.

Secrets never reach the file: they go to dbt through the environment the runner is given.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from airflow_dbt_provider.core import DbtConfigurationError


class TaskProfile(NamedTuple):
    """What the runner needs: ``profiles_dir`` (``None``: dbt's default), target, secret env vars."""

    profiles_dir: str | None
    target: str | None
    env: dict[str, str]


@contextmanager
def task_profile(
    *,
    project_dir: str,
    profiles_dir: str | None,
    target: str | None,
    profile_conn_id: str | None,
    overrides: Mapping[str, Any] | None,
) -> Iterator[TaskProfile]:
    """The user's profile, or a private one from ``profile_conn_id`` (removed on exit)."""
    if not profile_conn_id:
        yield TaskProfile(profiles_dir, target, {})
        return
    from airflow_dbt_provider.profiles import target_from_connection, write_profiles_dir

    dbt_target = target_from_connection(
        profile_connection(profile_conn_id),
        profile_name=project_profile_name(Path(project_dir)),
        target_name=target or "airflow",
        overrides=overrides,
    )
    private = write_profiles_dir(dbt_target)  # 0700 directory, 0600 file, no secret inside
    try:
        yield TaskProfile(str(private), dbt_target.target_name, dict(dbt_target.env))
    finally:
        shutil.rmtree(private, ignore_errors=True)


def warehouse_address(profile_conn_id: str | None) -> tuple[str | None, int | None]:
    """The warehouse's host and port when the profile came from a connection (never credentials),
    for Asset URIs and OpenLineage namespaces: dbt's artifacts carry no host."""
    if not profile_conn_id:
        return None, None
    connection = profile_connection(profile_conn_id)
    return connection.host or None, connection.port or None


def profile_connection(conn_id: str) -> Any:
    """The ``profile_conn_id`` connection; a missing one is reported as this argument's problem."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        example = '{"conn_type": "postgres", "host": "...", "login": "...", "schema": "..."}'
        raise DbtConfigurationError(
            f"profile_conn_id={conn_id!r}: Airflow has no connection {conn_id!r}, which this task builds "
            f"its dbt profile from. Define it on the workers, e.g. as the environment variable "
            f"AIRFLOW_CONN_{conn_id.upper()}='{example}', with `airflow connections add {conn_id} "
            f"--conn-type postgres --conn-host ...`, or in the UI (Admin > Connections); docs/profiles.md "
            f"lists the fields each warehouse needs. Or pass profiles_dir instead of profile_conn_id"
        ) from exc


def project_profile_name(project_dir: Path) -> str:
    """The ``profile:`` the project's ``dbt_project.yml`` names (the profile a connection builds)."""
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise DbtConfigurationError(
            f"{str(project_dir)!r} has no dbt_project.yml; set project_dir to the dbt project directory"
        )
    profile = (yaml.safe_load(path.read_text()) or {}).get("profile")
    if not profile:
        raise DbtConfigurationError(
            f"{path} sets no profile:, which profile_conn_id needs to name the profile"
        )
    return str(profile)
