"""The event the dbt Cloud trigger fires and the operator and sensor resume on, typed.

On the wire (the triggerer's database row) it stays the JSON dict every version has written:
``{"status", "run_id", "run_status", "message"}``. :meth:`RunEvent.from_dict` reads what earlier
versions wrote, so a task deferred across an upgrade resumes unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_dbt_provider.cloud.models import Run, RunStatus


class RunEventStatus(str, enum.Enum):
    """Why the trigger fired. ``SUCCESS``/``ERROR``/``CANCELLED`` mirror the run; ``TIMEOUT`` is the
    deadline; ``FAILED`` means the trigger could not watch the run (connection, token, unknown run)."""

    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    FAILED = "failed"


_OF_RUN = {
    RunStatus.SUCCESS: RunEventStatus.SUCCESS,
    RunStatus.ERROR: RunEventStatus.ERROR,
    RunStatus.CANCELLED: RunEventStatus.CANCELLED,
}


@dataclass(frozen=True)
class RunEvent:
    """One trigger event: why it fired, for which run."""

    status: RunEventStatus
    run_id: int
    message: str = ""
    run_status: int | None = None

    @classmethod
    def of_run(cls, run: Run) -> RunEvent:
        """The event of a run that ended (success, error or cancelled)."""
        status = _OF_RUN[run.status]
        message = {
            RunEventStatus.SUCCESS: f"run {run.id} succeeded",
            RunEventStatus.ERROR: f"run {run.id} failed: {run.status_message or 'see its steps'}",
            RunEventStatus.CANCELLED: f"run {run.id} was cancelled in dbt Cloud",
        }[status]
        return cls(status, run.id, message, int(run.status))

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives, in the shape (and key order) every version has fired."""
        return {
            "status": self.status.value,
            "run_id": self.run_id,
            "run_status": self.run_status,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, payload: Any) -> RunEvent:
        """Read an event payload of this version or an earlier one; :class:`ValueError` if it is none."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"not an event: {payload!r}")
        try:
            status, run_id = RunEventStatus(payload["status"]), int(payload["run_id"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"no known status and run id in {payload!r}") from None
        run_status = payload.get("run_status")
        return cls(
            status=status,
            run_id=run_id,
            message="" if payload.get("message") is None else str(payload["message"]),
            run_status=None if run_status is None else int(run_status),
        )
