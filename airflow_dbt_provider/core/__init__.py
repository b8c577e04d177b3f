"""Airflow-free dbt Core runner: a dbtRunner wrapper, typed results, events to log lines, parse cache.

Nothing here imports Airflow, and dbt itself is imported only when a command runs.
"""

from airflow_dbt_provider.core.errors import (
    DbtCommandFailedError,
    DbtConfigurationError,
    DbtCoreError,
    DbtEmptySelectionError,
    DbtInvocationError,
)
from airflow_dbt_provider.core.results import DbtResult, NodeResult, map_runner_result
from airflow_dbt_provider.core.runner import DbtRunner

__all__ = [
    "DbtCommandFailedError",
    "DbtConfigurationError",
    "DbtCoreError",
    "DbtEmptySelectionError",
    "DbtInvocationError",
    "DbtResult",
    "DbtRunner",
    "NodeResult",
    "map_runner_result",
]
