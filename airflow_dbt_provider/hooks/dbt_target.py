"""Airflow hook for the ``dbt_target`` connection type: a whole dbt target kept in a connection.

Why a connection type of its own: the built-in mappings (postgres, snowflake, bigquery…) cover the
common warehouses, but dbt has dozens of adapters and auth methods. A ``dbt_target`` connection
carries any target verbatim in its extra, so the secret still lives in Airflow's connection store
(and its secrets backends) instead of a ``profiles.yml`` on every worker. ``test_connection``
checks the target with the adapter's own credentials class when that adapter is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook

from airflow_dbt_provider.compat import connection_form
from airflow_dbt_provider.get_provider_info import DBT_TARGET_CONNECTION
from airflow_dbt_provider.profiles import DbtTarget, ProfileMappingError, target_from_connection
from airflow_dbt_provider.profiles.generic import CONN_TYPE


@connection_form(DBT_TARGET_CONNECTION)
class DbtTargetHook(BaseHook):
    """Read a dbt target from an Airflow connection of type ``dbt_target``.

    :param dbt_target_conn_id: the connection; its extra holds ``{"target": {...}}`` or the target's
        fields directly; Host/Port/Login/Password/Schema fill ``host``/``port``/``user``/
        ``password``/``schema`` when the target leaves them out.
    """

    conn_name_attr = "dbt_target_conn_id"
    default_conn_name = f"{CONN_TYPE}_default"
    conn_type = CONN_TYPE
    hook_name = "dbt target (any adapter)"

    def __init__(self, dbt_target_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dbt_target_conn_id = dbt_target_conn_id

    def get_conn(self) -> Any:
        """The Airflow connection itself (there is no client to open)."""
        return self.get_connection(self.dbt_target_conn_id)

    def get_target(
        self,
        profile_name: str,
        target_name: str = "airflow",
        overrides: Mapping[str, Any] | None = None,
    ) -> DbtTarget:
        """The dbt target for ``profile_name``; secrets are in ``.env``, never in ``.output``."""
        return target_from_connection(
            self.get_conn(), profile_name=profile_name, target_name=target_name, overrides=overrides
        )

    def test_connection(self) -> tuple[bool, str]:
        """Build the target and validate it with the adapter's credentials class (no network)."""
        from airflow_dbt_provider.profiles.validate import validate_target

        try:
            target = self.get_target(profile_name="connection_test")
            validate_target(target)
        except ProfileMappingError as exc:
            return False, str(exc)
        return True, f"dbt accepts this {target.adapter_type} target (credentials validated, not connected)."
