"""Wait for a dbt Cloud run someone else started (e.g. a fire-and-forget ``DbtCloudRunJobOperator``).

The sensor pokes once; if the run has not ended it defers to :class:`DbtCloudRunTrigger` (or keeps
poking in blocking mode). It succeeds when the run succeeds and fails, with the failing steps and
their log tails, when the run errors or is cancelled. The sensor did not start the run, so it never
cancels it: not on timeout and not on kill.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_dbt_provider.cloud import DbtCloudTransientError, RunStatus
from airflow_dbt_provider.compat import AirflowSensorTimeout, conf
from airflow_dbt_provider.links.dbt_cloud import JOB_RUN_URL_KEY, DbtCloudRunLink
from airflow_dbt_provider.operators.dbt_cloud import (
    DEFAULT_CONN_ID,
    DbtCloudRunError,
    dbt_cloud_client,
    failure_message,
    to_int,
    to_optional_int,
)
from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_SENSOR_TIMEOUT = 7 * 24 * 60 * 60


class DbtCloudRunSensor(BaseSensorOperator):
    """Succeed when a dbt Cloud run succeeds; fail when it errors or is cancelled.

    :param run_id: The run to watch (templated, e.g. ``"{{ ti.xcom_pull('run', key='job_run_id') }}"``).
    :param dbt_cloud_conn_id: Airflow connection of type ``dbt_cloud_api`` (or the official ``dbt_cloud``).
    :param account_id: dbt Cloud account; defaults to the connection's.
    :param deferrable: Wait in the triggerer; defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("dbt_cloud_conn_id", "run_id", "account_id")
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
        kwargs.setdefault("timeout", DEFAULT_SENSOR_TIMEOUT)
        if deferrable:
            kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        self.run_id = run_id
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = account_id
        self.deferrable = deferrable
        self.hook_params = hook_params or {}
        self._url_pushed = False

    def poke(self, context: Context) -> bool:
        run_id = to_int("run_id", self.run_id)
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
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
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return to_int("run_id", self.run_id)
        self.defer(
            trigger=DbtCloudRunTrigger(
                run_id=to_int("run_id", self.run_id),
                dbt_cloud_conn_id=self.dbt_cloud_conn_id,
                account_id=to_optional_int("account_id", self.account_id),
                poll_interval=self.poke_interval,
                end_time=time.time() + float(self.timeout),
                cancel_on_kill=False,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: succeed, fail with the failing steps, or time out."""
        if not isinstance(event, Mapping) or "status" not in event:
            raise DbtCloudRunError(
                f"{self.task_id}: the dbt Cloud trigger sent an unexpected event {event!r}"
            )
        run_id = to_int("run_id", event.get("run_id", self.run_id))
        status = event["status"]
        if status == "success":
            self.log.info("dbt Cloud run %s succeeded", run_id)
            return run_id
        if status == "timeout":
            raise AirflowSensorTimeout(
                f"dbt Cloud run {run_id} did not finish within the sensor's timeout={self.timeout}s "
                "(the run was left alone)"
            )
        if status == "failed":
            raise DbtCloudRunError(f"could not watch dbt Cloud run {run_id}: {event.get('message')}")
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
            run = client.get_run(run_id, include_steps=True)
            raise DbtCloudRunError(failure_message(run, client.run_url(run)))

    def _push_url(self, context: Context, url: str) -> None:
        if self._url_pushed:
            return
        context["ti"].xcom_push(key=JOB_RUN_URL_KEY, value=url)
        self._url_pushed = True


#: The name in ``apache-airflow-providers-dbt-cloud``, so a migrated DAG only changes its imports.
DbtCloudJobRunSensor = DbtCloudRunSensor
