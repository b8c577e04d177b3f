"""Airflow-free dbt Cloud API client: sync and async clients, typed models, errors, retry policy.

Nothing in this package imports Airflow, so it can be used (and tested) on its own.
"""

from __future__ import annotations

from airflow_dbt_provider.cloud.async_client import AsyncDbtCloudClient
from airflow_dbt_provider.cloud.client import DbtCloudClient
from airflow_dbt_provider.cloud.errors import (
    DbtCloudAuthError,
    DbtCloudConfigError,
    DbtCloudError,
    DbtCloudLookupError,
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudResponseError,
    DbtCloudTLSError,
    DbtCloudTransientError,
)
from airflow_dbt_provider.cloud.models import (
    Account,
    Artifact,
    Environment,
    Job,
    Project,
    Run,
    RunStatus,
    RunStep,
)
from airflow_dbt_provider.cloud.options import TriggerRunOptions
from airflow_dbt_provider.cloud.retry import RetryPolicy
from airflow_dbt_provider.cloud.settings import ClientSettings

__all__ = [
    "Account",
    "Artifact",
    "AsyncDbtCloudClient",
    "ClientSettings",
    "DbtCloudAuthError",
    "DbtCloudClient",
    "DbtCloudConfigError",
    "DbtCloudError",
    "DbtCloudLookupError",
    "DbtCloudNotFoundError",
    "DbtCloudRequestError",
    "DbtCloudResponseError",
    "DbtCloudTLSError",
    "DbtCloudTransientError",
    "Environment",
    "Job",
    "Project",
    "RetryPolicy",
    "Run",
    "RunStatus",
    "RunStep",
    "TriggerRunOptions",
]
