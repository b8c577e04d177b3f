"""The "dbt Cloud run" extra link: a button on the task that opens the run's page in dbt Cloud.

The URL is read from the ``job_run_url`` XCom the operator pushes as soon as the run exists (before
waiting), so the button works while the run is still going, also while the task is deferred. The
lookup uses the task instance key, map index included, so every mapped task instance links to its
own run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key of the run's dbt Cloud web page (same key as ``apache-airflow-providers-dbt-cloud``).
JOB_RUN_URL_KEY = "job_run_url"
#: XCom key of the run id (same key as ``apache-airflow-providers-dbt-cloud``).
JOB_RUN_ID_KEY = "job_run_id"


class DbtCloudRunLink(BaseOperatorLink):
    """Opens the dbt Cloud page of the run this task instance triggered, adopted or watched."""

    name = "dbt Cloud run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The run's URL, or ``""`` (Airflow hides the button) when no run was recorded yet."""
        url = XCom.get_value(ti_key=ti_key, key=JOB_RUN_URL_KEY)
        return url if isinstance(url, str) else ""
