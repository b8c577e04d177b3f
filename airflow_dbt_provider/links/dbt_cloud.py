"""The "dbt Cloud run" extra link: a button on the task that opens the run's page in dbt Cloud.

The URL is read from the ``job_run_url`` XCom the operator pushes as soon as the run exists (before
waiting), so the button works while the run is still going, also while the task is deferred. The
lookup uses the task instance key, map index included, so every mapped task instance links to its
own run.

A task that fails before any run exists (a bad job id, a refused token) never pushes
``job_run_url``; Airflow still asks every extra link for its URL when the task ends, and a lookup
of a missing XCom is logged as an ``[error] XCom not found`` a user reads as trouble. So the dbt
Cloud tasks record on themselves what they pushed in this try (:func:`record_run_url`), and the link
reads the XCom only when it runs somewhere that does not know (the API server, a resumed task).
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
#: Attribute of a running dbt Cloud task: the URL it pushed as ``job_run_url`` in this process,
#: ``""`` when it pushed none; absent where that is not known.
_RUN_URL_ATTR = "dbt_cloud_run_url"


def record_run_url(task: BaseOperator, url: str) -> None:
    """Say what this task instance pushed as ``job_run_url`` in this process (``""``: nothing yet)."""
    setattr(task, _RUN_URL_ATTR, url)


class DbtCloudRunLink(BaseOperatorLink):
    """Opens the dbt Cloud page of the run this task instance triggered, adopted or watched."""

    name = "dbt Cloud run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The run's URL, or ``""`` (Airflow hides the button) when no run was recorded yet."""
        known = getattr(operator, _RUN_URL_ATTR, None)
        if isinstance(known, str):  # the task itself, as it ends: no lookup of an XCom never pushed
            return known
        url = XCom.get_value(ti_key=ti_key, key=JOB_RUN_URL_KEY)
        return url if isinstance(url, str) else ""
