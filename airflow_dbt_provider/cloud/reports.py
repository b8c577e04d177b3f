"""What a dbt Cloud run looks like to the people watching it: summaries, failure text, step logs.

Airflow-free: the operators and the sensor hand in a :class:`Run` and a logger and get back JSON for
XCom, the text of the task's error, or lines in the task log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_dbt_provider.cloud.models import Run, RunStatus, RunStep
from airflow_dbt_provider.logs import Logger

#: Lines of a failed step's log quoted in the task's error.
LOG_TAIL_LINES = 40
#: Step statuses that make a step "failed" in a report.
FAILED_STEP_STATUSES = frozenset({RunStatus.ERROR, RunStatus.CANCELLED})


def tail(text: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (``""`` for none)."""
    if not text:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def took(seconds: float | None) -> str:
    """`` in 12.5s`` — or nothing, since the API may omit durations (the spec leaves them optional)."""
    return "" if seconds is None else f" in {seconds:g}s"


def failed_steps(run: Run) -> list[RunStep]:
    return [s for s in run.run_steps if s.status in FAILED_STEP_STATUSES]


def _status_name(status: RunStatus | None) -> str:
    return "pending" if status is None else status.name.lower()


def run_summary(run: Run, url: str) -> dict[str, Any]:
    """A JSON-ready summary of a run for XCom: status, duration, steps and the failed ones."""
    return {
        "run_id": run.id,
        "job_id": run.job_id,
        "status": run.status.name.lower(),
        "status_code": int(run.status),
        "status_message": run.status_message,
        "duration_seconds": run.duration_seconds,
        "url": url,
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "status": None if s.status is None else s.status.name.lower(),
                "duration_seconds": s.duration_seconds,
            }
            for s in run.run_steps
        ],
        "failed_steps": [s.name for s in failed_steps(run)],
    }


def run_to_dict(run: Run, url: str | None = None, include_related: Sequence[str] = ()) -> dict[str, Any]:
    """A run as JSON primitives, for the list operators' return values; with ``include_related``,
    each requested relation under its own key, as dbt Cloud sent it (``None`` when it sent none)."""
    related = {name: run.related.get(name) for name in include_related}
    return related | {
        "id": run.id,
        "job_definition_id": run.job_id,
        "project_id": run.project_id,
        "environment_id": run.environment_id,
        "status": int(run.status),
        "status_humanized": run.status.name.lower(),
        "status_message": run.status_message,
        "trigger_cause": run.trigger_cause,
        "git_branch": run.git_branch,
        "git_sha": run.git_sha,
        "created_at": None if run.created_at is None else run.created_at.isoformat(),
        "started_at": None if run.started_at is None else run.started_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
        "duration_seconds": run.duration_seconds,
        "href": url or run.href,
    }


def failure_message(run: Run, url: str) -> str:
    """Why the run did not succeed: failing step names and the tail of their logs."""
    if run.status is RunStatus.CANCELLED:
        head = f"dbt Cloud run {run.id} was cancelled in dbt Cloud"
    else:
        head = f"dbt Cloud run {run.id} failed"
    if run.status_message:
        head += f": {run.status_message}"
    parts = [f"{head} ({url})"]
    for step in failed_steps(run):
        if run.status is RunStatus.CANCELLED and step.status is RunStatus.CANCELLED:
            parts.append(f"step {step.index} '{step.name}' was cancelled")
            continue
        parts.append(f"step {step.index} '{step.name}' failed; last lines of its log:")
        text = tail(step.logs) or tail(step.truncated_debug_logs)
        parts.append(text or "(dbt Cloud returned no log for this step)")
    return "\n".join(parts)


class StepLogStream:
    """Writes run-step log lines to a logger as steps start and finish.

    Lines already written are remembered per step, so each line appears once however often the
    run is polled; a step's lines are written when its status changes, not on every poll.
    """

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._status: dict[int, RunStatus | None] = {}
        self._lines_written: dict[int, int] = {}

    def update(self, run: Run, *, final: bool = False) -> None:
        for position, step in enumerate(run.run_steps):
            key = step.index if step.index is not None else position
            changed = key not in self._status or self._status[key] != step.status
            self._status[key] = step.status
            if changed:
                self._log.info("dbt Cloud step %s '%s': %s", step.index, step.name, _status_name(step.status))
            if changed or final:
                self._write(key, step)

    def _write(self, key: int, step: RunStep) -> None:
        lines = (step.logs or "").splitlines()
        start = self._lines_written.get(key, 0)
        for line in lines[start:]:
            self._log.info("  | %s", line)
        self._lines_written[key] = max(start, len(lines))


def log_step_summary(log: Logger, run: Run) -> None:
    """One line per step, and the full log of each step that failed (for a run seen only at its end)."""
    for step in run.run_steps:
        log.info(
            "dbt Cloud step %s '%s': %s%s",
            step.index,
            step.name,
            _status_name(step.status),
            took(step.duration_seconds),
        )
        if step.status in FAILED_STEP_STATUSES:
            for line in (step.logs or step.truncated_debug_logs or "").splitlines():
                log.info("  | %s", line)
