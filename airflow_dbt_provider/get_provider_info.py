"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Airflow reads this dict without importing the modules it names, so a test
(``tests/unit/test_provider_info.py``) imports every listed module and class and checks that every
public hook, operator, sensor, trigger and extra link in the package is listed.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider import __version__
from airflow_dbt_provider.connection_defaults import (
    REQUEST_TIMEOUT_S,
    RETRY_BACKOFF_BASE_S,
    RETRY_BACKOFF_MAX_S,
    RETRY_MAX_ATTEMPTS,
)

INTEGRATION_CLOUD = "dbt Cloud"
INTEGRATION_CORE = "dbt Core"


# The dbt Cloud connection form (Airflow 3.2+ reads these declaratively; values go to Connection.extra).
DBT_CLOUD_CONNECTION: dict[str, Any] = {
    "connection-type": "dbt_cloud_api",
    "hook-class-name": "airflow_dbt_provider.hooks.dbt_cloud.DbtCloudHook",
    "hook-name": "dbt Cloud API",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {
            "login": "Account ID",
            "password": "API token",
            "host": "Access URL",
            "port": "Port (optional)",
        },
        "placeholders": {
            "login": "12345 (the number after /deploy/ in your dbt Cloud URLs)",
            "password": "dbtc_... service token",
            "host": "https://ab123.us1.dbt.com",
            "port": "443 (only for a non-default port)",
            "proxies": '{"https": "http://proxy.example.com:3128"}',
            "ca_bundle": "/etc/ssl/certs/corporate-ca.pem",
        },
    },
    "conn-fields": {
        "proxies": {
            "label": "Proxies",
            "description": "Proxy URL per scheme (requests style). Empty: HTTPS_PROXY / NO_PROXY apply.",
            "schema": {"type": ["object", "null"], "format": "json"},
        },
        "ca_bundle": {
            "label": "CA bundle",
            "description": "Path of a PEM CA bundle on workers and triggerer (for TLS-inspecting proxies).",
            "schema": {"type": ["string", "null"]},
        },
        "verify_ssl": {
            "label": "Verify TLS certificates",
            "description": "Turn off only for testing.",
            "schema": {"type": "boolean", "default": True},
        },
        "timeout": {
            "label": "Request timeout (seconds)",
            "schema": {"type": "number", "default": REQUEST_TIMEOUT_S, "minimum": 1},
        },
        "retry_max_attempts": {
            "label": "Attempts per request",
            "description": "Attempts on 429, 5xx, connection errors and timeouts; 1 disables retries.",
            "schema": {"type": "integer", "default": RETRY_MAX_ATTEMPTS, "minimum": 1},
        },
        "retry_backoff_base": {
            "label": "Retry backoff base (seconds)",
            "schema": {"type": "number", "default": RETRY_BACKOFF_BASE_S, "minimum": 0},
        },
        "retry_backoff_max": {
            "label": "Retry backoff cap (seconds)",
            "schema": {"type": "number", "default": RETRY_BACKOFF_MAX_S, "minimum": 0},
        },
    },
}


# The generic dbt target connection: any adapter's whole target in the extra (see profiles/generic.py).
DBT_TARGET_CONNECTION: dict[str, Any] = {
    "connection-type": "dbt_target",
    "hook-class-name": "airflow_dbt_provider.hooks.dbt_target.DbtTargetHook",
    "hook-name": "dbt target (any adapter)",
    "ui-field-behaviour": {
        "relabeling": {"login": "User", "schema": "dbt schema"},
        "placeholders": {
            "host": "fills the target's host unless the target JSON sets it",
            "password": "kept out of profiles.yml: passed to dbt through an environment variable",
            "adapter_type": "clickhouse",
            "target": '{"type": "clickhouse", "host": "ch.example.com", "port": 8443, "secure": true}',
        },
    },
    "conn-fields": {
        "adapter_type": {
            "label": "dbt adapter type",
            "description": "The target's 'type' (the dbt adapter), when the target JSON does not set it.",
            "schema": {"type": ["string", "null"]},
        },
        "target": {
            "label": "dbt target (JSON)",
            "description": "The dbt target exactly as in profiles.yml. Secret keys (password, token, "
            "private_key, *_secret) are moved to environment variables at run time.",
            "schema": {"type": ["object", "null"], "format": "json"},
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata in the shape of Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-dbt-provider",
        "name": "dbt (Core and Cloud)",
        "description": "Run dbt Core in process through dbtRunner and drive dbt Cloud jobs from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION_CLOUD,
                "external-doc-url": "https://docs.getdbt.com/docs/dbt-cloud-apis/overview",
                "tags": ["service"],
            },
            {
                "integration-name": INTEGRATION_CORE,
                "external-doc-url": "https://docs.getdbt.com/reference/programmatic-invocations",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION_CLOUD,
                "python-modules": ["airflow_dbt_provider.hooks.dbt_cloud"],
            },
            {
                "integration-name": INTEGRATION_CORE,
                "python-modules": ["airflow_dbt_provider.hooks.dbt_target"],
            },
        ],
        "operators": [
            {
                "integration-name": INTEGRATION_CORE,
                "python-modules": [
                    "airflow_dbt_provider.operators.dbt",
                    "airflow_dbt_provider.operators.dbt_base",
                    "airflow_dbt_provider.operators.dbt_node",
                ],
            },
            {
                "integration-name": INTEGRATION_CLOUD,
                "python-modules": [
                    "airflow_dbt_provider.operators.dbt_cloud",
                    "airflow_dbt_provider.operators.dbt_cloud_runs",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION_CLOUD,
                "python-modules": ["airflow_dbt_provider.sensors.dbt_cloud"],
            },
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION_CLOUD,
                "python-modules": ["airflow_dbt_provider.triggers.dbt_cloud"],
            },
            {
                "integration-name": INTEGRATION_CORE,
                "python-modules": ["airflow_dbt_provider.triggers.dbt_task_group"],
            },
        ],
        "extra-links": ["airflow_dbt_provider.links.dbt_cloud.DbtCloudRunLink"],
        "connection-types": [DBT_CLOUD_CONNECTION, DBT_TARGET_CONNECTION],
        # Deployment-wide settings (`airflow config list` shows them); see docs/scale_out.md.
        "config": {
            "dbt_provider": {
                "description": "dbt Core tasks on workers that share no disk.",
                "options": {
                    "parse_cache_url": {
                        "description": (
                            "Object-storage URL (Airflow ObjectStoragePath, e.g. "
                            "s3://aws_conn@bucket/dbt-parse-cache) where workers share dbt's "
                            "partial-parse files, so a cold worker starts warm. Every worker must use "
                            "the same cache root (AIRFLOW_DBT_PROVIDER_CACHE_DIR) path. Empty: off."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://aws_default@my-bucket/dbt-parse-cache",
                        "default": "",
                    }
                },
            }
        },
        # dbt:// Asset URIs for relations whose host is unknown (see airflow_dbt_provider/assets.py).
        "asset-uris": [
            {
                "schemes": ["dbt"],
                "handler": "airflow_dbt_provider.assets.sanitize_uri",
                "factory": "airflow_dbt_provider.assets.create_asset",
            }
        ],
    }
