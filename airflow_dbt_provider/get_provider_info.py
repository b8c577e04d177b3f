"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Airflow reads this dict without importing the modules it names, so a test
(``tests/unit/test_provider_info.py``) imports every listed module and class and checks that every
public hook, operator, sensor, trigger and extra link in the package is listed.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider import __version__

INTEGRATION_CLOUD = "dbt Cloud"
INTEGRATION_CORE = "dbt Core"


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
        "hooks": [],
        "operators": [],
        "sensors": [],
        "triggers": [],
        "extra-links": [],
        "connection-types": [],
    }
