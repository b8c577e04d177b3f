"""Wait for a dbt Cloud run someone else started (e.g. a fire-and-forget ``DbtCloudRunJobOperator``).

The sensor pokes once; if the run has not ended it defers to :class:`DbtCloudRunTrigger` (or keeps
poking in blocking mode). It succeeds when the run succeeds and fails, with the failing steps and
their log tails, when the run errors or is cancelled. The sensor did not start the run, so it never
cancels it: not on timeout and not on kill.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_dbt_provider.cloud import DbtCloudTransientError, RunStatus
from airflow_dbt_provider.cloud.coerce import to_int
from airflow_dbt_provider.cloud.events import RunEventStatus
from airflow_dbt_provider.cloud.reports import failure_message
from airflow_dbt_provider.compat import AirflowSensorTimeout, conf
from airflow_dbt_provider.dbt_cloud_base import (
    DEFAULT_CONN_ID,
    DEFAULT_RUN_TIMEOUT_S,
    DbtCloudBaseOperator,
    DbtCloudRunError,
)
from airflow_dbt_provider.links.dbt_cloud import JOB_RUN_URL_KEY, DbtCloudRunLink, record_run_url
from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DbtCloudRunSensor(BaseSensorOperator, DbtCloudBaseOperator):
    """Succeed when a dbt Cloud run succeeds; fail when it errors or is cancelled.

    Parameters of :class:`~airflow_dbt_provider.dbt_cloud_base.DbtCloudBaseOperator` (the connection,
    ``account_id``, ``hook_params``) and:

    :param run_id: The run to watch (templated, e.g. ``"{{ ti.xcom_pull('run', key='job_run_id') }}"``).
    :param deferrable: Wait in the triggerer; defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = (*DbtCloudBaseOperator.template_fields, "run_id")
    operator_extra_links = (DbtCloudRunLink(),)

    def __init__(
        self,
        *,
        run_id: int | str,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", DEFAULT_RUN_TIMEOUT_S)
        if deferrable:
            kwargs.setdefault("poke_interval", 30)
        super().__init__(
            dbt_cloud_conn_id=dbt_cloud_conn_id, account_id=account_id, hook_params=hook_params, **kwargs
        )
        self.run_id = run_id
        self.deferrable = deferrable
        self._url_pushed = False

    def poke(self, context: Context) -> bool:
        run_id = to_int("run_id", self.run_id)
        with self.new_client() as client:
            try:
                run = client.get_run(run_id)
            except DbtCloudTransientError as exc:
                self.log.warning("dbt Cloud run %s: status check failed (%s); poking again", run_id, exc)
                return False
            self._push_url(context, client.run_url(run))
            if run.status is RunStatus.SUCCESS:
                self.log.info("dbt Cloud run %s succeeded", run_id)
                return True
            if run.is_terminal:
                raise DbtCloudRunError(
                    failure_message(client.get_run(run_id, include_steps=True), client.run_url(run))
                )
            self.log.info("dbt Cloud run %s is %s", run_id, run.status.name.lower())
            return False

    def execute(self, context: Context) -> Any:
        record_run_url(self, "")  # a new try: no job_run_url until the run is found
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return to_int("run_id", self.run_id)
        self.defer(
            trigger=DbtCloudRunTrigger(
                run_id=to_int("run_id", self.run_id),
                dbt_cloud_conn_id=self.dbt_cloud_conn_id,
                account_id=self.account,
                poll_interval=self.poke_interval,
                end_time=time.time() + float(self.timeout),
                cancel_on_kill=False,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: succeed, fail with the failing steps, or time out."""
        resumed = self.read_event(event)
        run_id = resumed.run_id
        if resumed.status is RunEventStatus.SUCCESS:
            self.log.info("dbt Cloud run %s succeeded", run_id)
            return run_id
        if resumed.status is RunEventStatus.TIMEOUT:
            raise AirflowSensorTimeout(
                f"dbt Cloud run {run_id} did not finish within the sensor's timeout={self.timeout}s "
                "(the run was left alone)"
            )
        if resumed.status is RunEventStatus.FAILED:
            raise DbtCloudRunError(f"could not watch dbt Cloud run {run_id}: {resumed.message}")
        with self.new_client() as client:
            run = client.get_run(run_id, include_steps=True)
            raise DbtCloudRunError(failure_message(run, client.run_url(run)))

    def _push_url(self, context: Context, url: str) -> None:
        if self._url_pushed:
            return
        context["ti"].xcom_push(key=JOB_RUN_URL_KEY, value=url)
        record_run_url(self, url)
        self._url_pushed = True


#: The name in ``apache-airflow-providers-dbt-cloud``, so a migrated DAG only changes its imports.
DbtCloudJobRunSensor = DbtCloudRunSensor
