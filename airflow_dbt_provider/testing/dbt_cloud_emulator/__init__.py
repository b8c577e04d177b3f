"""An emulated dbt Cloud Administrative API (v2 jobs/runs/artifacts, v3 projects/environments).

Run it as ``python -m airflow_dbt_provider.testing.dbt_cloud_emulator`` (or ``dbt-cloud-emulator``),
in process with :class:`DbtCloudEmulator`, or through the pytest fixtures in
``airflow_dbt_provider.testing.pytest_plugin``. ``docs/emulator.md`` is the user guide.
"""

from __future__ import annotations

from airflow_dbt_provider.testing.dbt_cloud_emulator.app import RecordedRequest
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import ConfigError, default_config
from airflow_dbt_provider.testing.dbt_cloud_emulator.emulator import DbtCloudEmulator
from airflow_dbt_provider.testing.dbt_cloud_emulator.faults import FaultError
from airflow_dbt_provider.testing.dbt_cloud_emulator.state import World

__all__ = ["ConfigError", "DbtCloudEmulator", "FaultError", "RecordedRequest", "World", "default_config"]
