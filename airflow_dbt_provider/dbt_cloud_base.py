"""What every dbt Cloud operator and the dbt Cloud sensor share: the connection, the account, the client.

:class:`DbtCloudBaseOperator` holds ``dbt_cloud_conn_id``, ``account_id`` and the official provider's
``hook_params`` (accepted, warned about once, ignored), and makes the task's client through
:meth:`DbtCloudHook.get_client`, the one way a client is made from a connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_dbt_provider.cloud import DbtCloudClient
from airflow_dbt_provider.cloud.coerce import to_optional_int
from airflow_dbt_provider.cloud.events import RunEvent
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook

DEFAULT_CONN_ID = DbtCloudHook.default_conn_name
#: How long the run-job operator and the sensor wait for a run by default (``timeout``): 7 days.
DEFAULT_RUN_TIMEOUT_S = 7 * 24 * 60 * 60


class DbtCloudRunError(AirflowException):
    """A dbt Cloud run failed, was cancelled, timed out, or could not be watched."""


class DbtCloudBaseOperator(BaseOperator):
    """Base of the dbt Cloud operators and sensor.

    :param dbt_cloud_conn_id: Airflow connection of type ``dbt_cloud_api`` (or the official ``dbt_cloud``).
    :param account_id: dbt Cloud account; defaults to the connection's.
    :param hook_params: Accepted for compatibility with the official provider and ignored, with a
        warning: retries and timeouts are set on the connection (extras ``timeout``,
        ``retry_max_attempts``, ...).
    """

    template_fields: Sequence[str] = ("dbt_cloud_conn_id", "account_id")

    def __init__(
        self,
        *,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = account_id
        self.hook_params = hook_params or {}
        if self.hook_params:
            self.log.warning(
                "%s: hook_params is ignored; set timeouts and retries on the connection instead", self.task_id
            )

    @property
    def account(self) -> int | None:
        """``account_id`` as rendered, as a number (``None``: the connection's account)."""
        return to_optional_int("account_id", self.account_id)

    def read_event(self, event: Any) -> RunEvent:
        """The trigger's event, typed; an unreadable one fails the task saying what it was."""
        try:
            return RunEvent.from_dict(event)
        except ValueError:
            raise DbtCloudRunError(
                f"{self.task_id}: the dbt Cloud trigger sent an unexpected event {event!r}"
            ) from None

    def new_client(self) -> DbtCloudClient:
        """A client for this task's connection and account; use it as a context manager."""
        return DbtCloudHook(dbt_cloud_conn_id=self.dbt_cloud_conn_id).get_client(self.account)
