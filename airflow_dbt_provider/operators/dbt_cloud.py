"""Operators that drive dbt Cloud: run a job, fetch artifacts, list jobs and runs, cancel a run.

Parameter names, XCom keys (``job_run_id``, ``job_run_url``) and return values follow
``apache-airflow-providers-dbt-cloud`` wherever the meaning is the same, so moving a DAG over means
changing its imports (see ``docs/dbt_cloud_operators.md``). What differs is what hurt users:

* **No duplicate runs on retry.** The run id is persisted in the task state store (AIP-103) before
  waiting; XComs of a previous try are cleared when a new try starts, the state store is not. A new
  try adopts the previous try's run when it is still in flight, retries it from the failed step with
  ``retry_from_failure``, and triggers a fresh run only when the previous run succeeded or a user
  cleared the task (:func:`decide_run_start`).
* **Timeouts cancel the run.** ``timeout`` is a deadline for the run; when it passes the run is
  cancelled and the task fails saying so, in blocking and deferrable mode alike.
* **Kills cancel the run**, in blocking mode here (``on_kill``) and while deferred in the trigger.
* **Failures explain themselves**: the failing step names and the tail of their logs.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_dbt_provider.assets import built_assets
from airflow_dbt_provider.cloud import (
    DbtCloudClient,
    DbtCloudError,
    DbtCloudNotFoundError,
    DbtCloudTransientError,
    Job,
    Run,
    RunStatus,
    RunStep,
    TriggerRunOptions,
)
from airflow_dbt_provider.cloud.options import MAX_CAUSE_LENGTH
from airflow_dbt_provider.compat import conf, warn_no_trigger_on_kill
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook
from airflow_dbt_provider.lineage import openlineage_enabled, operator_lineage, parent_run_cause
from airflow_dbt_provider.links.dbt_cloud import JOB_RUN_ID_KEY, JOB_RUN_URL_KEY, DbtCloudRunLink
from airflow_dbt_provider.triggers.dbt_cloud import DbtCloudRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_CONN_ID = DbtCloudHook.default_conn_name
#: XCom key of the JSON summary of a finished run (status, duration, steps, failed steps).
RUN_SUMMARY_KEY = "dbt_cloud_run_summary"
#: Task state store key of the run a try started; survives retries (XComs do not).
STATE_STORE_KEY = "dbt_cloud_run"
#: Lines of a failed step's log quoted in the task's error.
LOG_TAIL_LINES = 40
DEFAULT_TIMEOUT = 7 * 24 * 60 * 60
DEFAULT_CHECK_INTERVAL = 60
_IN_FLIGHT = [RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING]


class DbtCloudRunError(AirflowException):
    """A dbt Cloud run failed, was cancelled, timed out, or could not be watched."""


# --- the retry decision --------------------------------------------------------------------------


class RunStart(str, enum.Enum):
    """How a try gets its run."""

    ADOPT = "adopt"  # watch a run that is already in flight; trigger nothing
    RETRY = "retry"  # POST /runs/{id}/retry/ on the previous try's failed run
    TRIGGER = "trigger"  # start a fresh run of the job


@dataclass(frozen=True)
class StoredRun:
    """The run a try of this task instance started, as kept in the task state store.

    ``max_tries`` tells a retry from a user's clear: Airflow keeps a task instance's ``max_tries``
    across automatic retries and recomputes it (``try_number + retries``) when a user clears it.
    """

    run_id: int
    job_id: int
    try_number: int
    max_tries: int

    def to_state(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "try_number": self.try_number,
            "max_tries": self.max_tries,
        }

    @classmethod
    def from_state(cls, value: Any) -> StoredRun | None:
        """Parse what the store returned; anything unreadable counts as nothing stored."""
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                run_id=int(value["run_id"]),
                job_id=int(value["job_id"]),
                try_number=int(value.get("try_number", 0)),
                max_tries=int(value["max_tries"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class RunStartDecision:
    action: RunStart
    run_id: int | None
    reason: str


def decide_run_start(
    *,
    job_id: int,
    max_tries: int,
    stored: StoredRun | None,
    stored_status: RunStatus | None,
    retry_from_failure: bool,
    in_flight_run_id: int | None = None,
) -> RunStartDecision:
    """Decide how this try gets its run, so that a retry never starts a duplicate by accident.

    :param job_id: The job this try runs.
    :param max_tries: The task instance's current ``max_tries`` (changes only when a user clears it).
    :param stored: The run a previous try of this task instance persisted, if any.
    :param stored_status: That run's status now (``None`` when it could not be found).
    :param retry_from_failure: Retry a failed previous run from its failed step.
    :param in_flight_run_id: With ``reuse_existing_run``, the newest in-flight run of the job.
    """
    previous = stored if stored is not None and stored.job_id == job_id else None
    if previous is not None and previous.max_tries != max_tries:
        previous = None  # a user cleared the task: they asked for a new run
    if previous is not None and stored_status is not None:
        if not stored_status.is_terminal:
            return RunStartDecision(
                RunStart.ADOPT,
                previous.run_id,
                f"run {previous.run_id} of the previous try is still {stored_status.name.lower()}",
            )
        if stored_status is RunStatus.ERROR and retry_from_failure:
            return RunStartDecision(
                RunStart.RETRY, previous.run_id, f"run {previous.run_id} of the previous try failed"
            )
    if in_flight_run_id is not None:
        return RunStartDecision(
            RunStart.ADOPT, in_flight_run_id, f"run {in_flight_run_id} of job {job_id} is already in flight"
        )
    return RunStartDecision(RunStart.TRIGGER, None, "no run of a previous try to adopt or retry")


# --- helpers shared by the operators -------------------------------------------------------------


def dbt_cloud_client(conn_id: str, account_id: int | None) -> DbtCloudClient:
    settings = DbtCloudHook(dbt_cloud_conn_id=conn_id).get_settings()
    if account_id is not None:
        settings = replace(settings, account_id=to_int("account_id", account_id))
    return DbtCloudClient(settings)


def to_int(name: str, value: Any) -> int:
    """An id from an int or a rendered template (``"123"``), with an error that says what was wrong."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (or a template rendering to one), got {value!r}") from None


def to_optional_int(name: str, value: Any) -> int | None:
    return None if value is None or value == "" else to_int(name, value)


def _tail(text: str | None, lines: int = LOG_TAIL_LINES) -> str:
    if not text:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _failed_steps(run: Run) -> list[RunStep]:
    return [s for s in run.run_steps if s.status in (RunStatus.ERROR, RunStatus.CANCELLED)]


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
        "failed_steps": [s.name for s in _failed_steps(run)],
    }


def run_to_dict(run: Run, url: str | None = None) -> dict[str, Any]:
    """A run as JSON primitives, for the list operators' return values."""
    return {
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
    for step in _failed_steps(run):
        if run.status is RunStatus.CANCELLED and step.status is RunStatus.CANCELLED:
            parts.append(f"step {step.index} '{step.name}' was cancelled")
            continue
        parts.append(f"step {step.index} '{step.name}' failed; last lines of its log:")
        tail = _tail(step.logs) or _tail(step.truncated_debug_logs)
        parts.append(tail or "(dbt Cloud returned no log for this step)")
    return "\n".join(parts)


class _StepLogStream:
    """Writes run-step log lines into the task log as steps start and finish.

    Lines already written are remembered per step, so each line appears once however often the
    run is polled; a step's lines are written when its status changes, not on every poll.
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self._status: dict[int, RunStatus | None] = {}
        self._lines_written: dict[int, int] = {}

    def update(self, run: Run, *, final: bool = False) -> None:
        for position, step in enumerate(run.run_steps):
            key = step.index if step.index is not None else position
            changed = key not in self._status or self._status[key] != step.status
            self._status[key] = step.status
            if changed:
                status = "pending" if step.status is None else step.status.name.lower()
                self._log.info("dbt Cloud step %s '%s': %s", step.index, step.name, status)
            if changed or final:
                self._write(key, step)

    def _write(self, key: int, step: RunStep) -> None:
        lines = (step.logs or "").splitlines()
        start = self._lines_written.get(key, 0)
        for line in lines[start:]:
            self._log.info("  | %s", line)
        self._lines_written[key] = max(start, len(lines))


def _took(seconds: float | None) -> str:
    """`` in 12.5s`` — or nothing, since the API may omit durations (the spec leaves them optional)."""
    return "" if seconds is None else f" in {seconds:g}s"


def _log_step_summary(log: Any, run: Run) -> None:
    """One line per step, and the full log of each step that failed."""
    for step in run.run_steps:
        status = "pending" if step.status is None else step.status.name.lower()
        log.info("dbt Cloud step %s '%s': %s%s", step.index, step.name, status, _took(step.duration_seconds))
        if step.status in (RunStatus.ERROR, RunStatus.CANCELLED):
            for line in (step.logs or step.truncated_debug_logs or "").splitlines():
                log.info("  | %s", line)


class _RunStateStore:
    """The task state store entry of this task instance (map index included), failure-tolerant.

    Losing it only loses crash recovery, so a store that is unavailable or fails is a warning, not
    a task failure.
    """

    def __init__(self, context: Context, log: Any) -> None:
        self._store = context.get("task_state_store")
        self._log = log
        if self._store is None:
            log.warning("task_state_store is not available: a retry cannot adopt this try's dbt Cloud run")

    def load(self) -> StoredRun | None:
        if self._store is None:
            return None
        try:
            return StoredRun.from_state(self._store.get(STATE_STORE_KEY))
        except Exception as exc:
            self._log.warning("could not read the task state store (%s); treating this try as the first", exc)
            return None

    def save(self, stored: StoredRun) -> None:
        if self._store is None:
            return
        try:
            self._store.set(STATE_STORE_KEY, stored.to_state())
        except Exception as exc:
            self._log.warning(
                "could not persist dbt Cloud run %s in the task state store: %s", stored.run_id, exc
            )


# --- run a job -------------------------------------------------------------------------------------


class DbtCloudRunJobOperator(BaseOperator):
    """Run a dbt Cloud job and (by default) wait for it, without ever starting a duplicate on retry.

    :param dbt_cloud_conn_id: Airflow connection of type ``dbt_cloud_api`` (or the official ``dbt_cloud``).
    :param job_id: The job to run. Alternatively give ``project_name``, ``environment_name`` and ``job_name``.
    :param project_name: Project of the job, when it is looked up by name.
    :param environment_name: Environment of the job, when it is looked up by name.
    :param job_name: Name of the job, when it is looked up by name (exactly one match is required).
    :param account_id: dbt Cloud account; defaults to the connection's.
    :param trigger_reason: The run's ``cause``; defaults to one naming the DAG, task and DAG run.
    :param steps_override: dbt commands to run instead of the job's.
    :param schema_override: Target schema override.
    :param additional_run_config: Further trigger fields passed through to dbt Cloud as they are.
    :param wait_for_termination: Wait for the run to end (default); ``False`` is fire-and-forget.
    :param timeout: Seconds the run may take; when they pass the run is cancelled and the task fails.
    :param check_interval: Seconds between status checks.
    :param retry_from_failure: On a retry whose previous run failed, retry that run from the failed step.
    :param reuse_existing_run: Adopt an in-flight run of the job instead of triggering a new one.
    :param deferrable: Wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param cancel_on_kill: Cancel the run when the task is killed (also while deferred).
    :param asset_alias: Name of an ``AssetAlias`` to emit one Asset event per model, seed and snapshot
        the run built (from its last step's ``run_results.json`` and ``manifest.json``), with the
        URIs the local dbt operators use, so downstream DAGs can be scheduled on dbt models.
    :param openlineage_inject_parent_job_info: Replace the run's ``cause`` with this task's OpenLineage
        parent (and root) run as JSON, as the official provider does, so lineage consumers reading dbt
        Cloud runs can link them to the Airflow task. Needs the ``openlineage`` extra. Independently,
        with OpenLineage enabled the task's own events carry the datasets the run read and built.
    :param hook_params: Accepted for compatibility with the official provider and ignored: retries and
        timeouts are set on the connection (extras ``timeout``, ``retry_max_attempts``, ...).
    :return: The run id (an int).
    """

    template_fields: Sequence[str] = (
        "dbt_cloud_conn_id",
        "job_id",
        "project_name",
        "environment_name",
        "job_name",
        "account_id",
        "trigger_reason",
        "steps_override",
        "schema_override",
        "additional_run_config",
        "git_branch",
        "git_sha",
        "dbt_version_override",
        "target_name_override",
        "threads_override",
        "timeout_seconds_override",
        "generate_docs_override",
        "github_pull_request_id",
        "gitlab_merge_request_id",
        "azure_pull_request_id",
        "non_native_pull_request_id",
    )
    template_fields_renderers = {"additional_run_config": "json", "steps_override": "json"}
    operator_extra_links = (DbtCloudRunLink(),)
    ui_color = "#ff694a"

    def __init__(
        self,
        *,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        job_id: int | str | None = None,
        project_name: str | None = None,
        environment_name: str | None = None,
        job_name: str | None = None,
        account_id: int | str | None = None,
        trigger_reason: str | None = None,
        steps_override: list[str] | None = None,
        schema_override: str | None = None,
        additional_run_config: dict[str, Any] | None = None,
        git_branch: str | None = None,
        git_sha: str | None = None,
        dbt_version_override: str | None = None,
        target_name_override: str | None = None,
        threads_override: int | str | None = None,
        timeout_seconds_override: int | str | None = None,
        generate_docs_override: bool | None = None,
        github_pull_request_id: int | str | None = None,
        gitlab_merge_request_id: int | str | None = None,
        azure_pull_request_id: int | str | None = None,
        non_native_pull_request_id: int | str | None = None,
        wait_for_termination: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        retry_from_failure: bool = False,
        reuse_existing_run: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        asset_alias: str | None = None,
        openlineage_inject_parent_job_info: bool = False,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), AssetAlias(name=asset_alias)]
        super().__init__(**kwargs)
        if job_id is None and not (project_name and environment_name and job_name):
            raise ValueError(
                f"{self.task_id}: give job_id, or all of project_name, environment_name and job_name "
                "to look the job up by name"
            )
        if timeout is None or float(timeout) <= 0:
            raise ValueError(f"{self.task_id}: timeout must be a positive number of seconds, got {timeout!r}")
        if check_interval is None or float(check_interval) <= 0:
            raise ValueError(
                f"{self.task_id}: check_interval must be a positive number of seconds, got {check_interval!r}"
            )
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.job_id = job_id
        self.project_name = project_name
        self.environment_name = environment_name
        self.job_name = job_name
        self.account_id = account_id
        self.trigger_reason = trigger_reason
        self.steps_override = steps_override
        self.schema_override = schema_override
        self.additional_run_config = additional_run_config or {}
        self.git_branch = git_branch
        self.git_sha = git_sha
        self.dbt_version_override = dbt_version_override
        self.target_name_override = target_name_override
        self.threads_override = threads_override
        self.timeout_seconds_override = timeout_seconds_override
        self.generate_docs_override = generate_docs_override
        self.github_pull_request_id = github_pull_request_id
        self.gitlab_merge_request_id = gitlab_merge_request_id
        self.azure_pull_request_id = azure_pull_request_id
        self.non_native_pull_request_id = non_native_pull_request_id
        self.wait_for_termination = wait_for_termination
        self.timeout = float(timeout)
        self.check_interval = float(check_interval)
        self.retry_from_failure = retry_from_failure
        self.reuse_existing_run = reuse_existing_run
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.asset_alias = asset_alias
        self.hook_params = hook_params or {}
        self.run_id: int | None = None
        self._lineage_artifacts: tuple[Any, Any] | None = None
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        if self.hook_params:
            self.log.warning(
                "%s: hook_params is ignored; set timeouts and retries on the connection instead", self.task_id
            )

    # --- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> int:
        with self._new_client() as client:
            job_id = self._resolve_job_id(client)
            run = self._start_run(client, job_id, context)
            self.run_id = run.id
            url = client.run_url(run)
            context["ti"].xcom_push(key=JOB_RUN_ID_KEY, value=run.id)
            context["ti"].xcom_push(key=JOB_RUN_URL_KEY, value=url)
            self.log.info("dbt Cloud run %s of job %s: %s", run.id, job_id, url)
            if not self.wait_for_termination:
                if self.deferrable:
                    self.log.info("wait_for_termination=False: not waiting, so deferrable has no effect")
                return run.id
            deadline = time.time() + self.timeout
            if self.deferrable:
                # A flaky API must not fail a started run: on a transient error the trigger asks.
                with contextlib.suppress(DbtCloudTransientError):
                    run = client.get_run(run.id)
                if not run.is_terminal:
                    self._defer(run.id, deadline)
                return self._finish(context, client, client.get_run(run.id, include_steps=True))
            return self._wait(context, client, run.id, deadline)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: report the run, cancel it on timeout, or fail."""
        if not isinstance(event, Mapping) or "status" not in event or "run_id" not in event:
            raise DbtCloudRunError(
                f"{self.task_id}: the dbt Cloud trigger sent an unexpected event {event!r}"
            )
        self.run_id = int(event["run_id"])
        status = event["status"]
        with self._new_client() as client:
            if status == "timeout":
                self._cancel_after_timeout(client, self.run_id)
            if status == "failed":
                raise DbtCloudRunError(
                    f"could not watch dbt Cloud run {self.run_id}: {event.get('message')}. The run may still "
                    "be going in dbt Cloud; check it there and fix the connection."
                )
            return self._finish(context, client, client.get_run(self.run_id, include_steps=True))

    def on_kill(self) -> None:
        """Cancel the run when the task is killed while waiting in blocking mode."""
        if not self.cancel_on_kill or self.run_id is None or not self.wait_for_termination:
            return
        self.log.info("task killed: cancelling dbt Cloud run %s", self.run_id)
        try:
            with self._new_client() as client:
                client.cancel_run(self.run_id)
        except DbtCloudError as exc:
            self.log.warning("could not cancel dbt Cloud run %s: %s", self.run_id, exc)

    # --- starting the run ------------------------------------------------------------------------

    def _new_client(self) -> DbtCloudClient:
        return dbt_cloud_client(self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id))

    def _resolve_job_id(self, client: DbtCloudClient) -> int:
        if self.job_id is not None and self.job_id != "":
            return to_int("job_id", self.job_id)
        job: Job = client.find_job(str(self.project_name), str(self.environment_name), str(self.job_name))
        self.log.info(
            "job %r in %s/%s is job %s", self.job_name, self.project_name, self.environment_name, job.id
        )
        return job.id

    def _start_run(self, client: DbtCloudClient, job_id: int, context: Context) -> Run:
        """Adopt, retry or trigger a run as :func:`decide_run_start` says; persist it before waiting."""
        ti = context["ti"]
        max_tries = int(getattr(ti, "max_tries", 0) or 0)
        store = _RunStateStore(context, self.log)
        stored = store.load()
        decision = decide_run_start(
            job_id=job_id,
            max_tries=max_tries,
            stored=stored,
            stored_status=self._status_of(client, stored.run_id) if stored else None,
            retry_from_failure=self.retry_from_failure,
            in_flight_run_id=self._in_flight_run(client, job_id) if self.reuse_existing_run else None,
        )
        if decision.action is RunStart.ADOPT and decision.run_id is not None:
            self.log.info(
                "adopting dbt Cloud run %s: %s; triggering nothing", decision.run_id, decision.reason
            )
            run = client.get_run(decision.run_id)
        elif decision.action is RunStart.RETRY and decision.run_id is not None:
            self.log.warning(
                "retrying dbt Cloud run %s from its failed step (%s). dbt Cloud re-runs it with the "
                "settings of the original run: overrides of this task are not re-applied.",
                decision.run_id,
                decision.reason,
            )
            run = client.retry_run(decision.run_id)
        else:
            run = client.trigger_run(job_id, self._trigger_options(context))
            self.log.info("triggered dbt Cloud run %s of job %s", run.id, job_id)
        store.save(StoredRun(run.id, job_id, int(getattr(ti, "try_number", 0) or 0), max_tries))
        return run

    def _status_of(self, client: DbtCloudClient, run_id: int) -> RunStatus | None:
        try:
            return client.get_run(run_id).status
        except DbtCloudNotFoundError:
            self.log.warning("run %s of a previous try no longer exists in dbt Cloud", run_id)
            return None

    def _in_flight_run(self, client: DbtCloudClient, job_id: int) -> int | None:
        runs = client.list_runs(job_id=job_id, status=list(_IN_FLIGHT), order_by="-id", limit=1)
        return runs[0].id if runs else None

    def _trigger_options(self, context: Context) -> TriggerRunOptions:
        cause = self.trigger_reason or self._default_cause(context)
        if self.openlineage_inject_parent_job_info:
            cause = self._openlineage_cause(context, cause)
        return TriggerRunOptions.with_cause(
            cause,
            steps_override=list(self.steps_override) if self.steps_override else None,
            schema_override=self.schema_override or None,
            git_branch=self.git_branch or None,
            git_sha=self.git_sha or None,
            dbt_version_override=self.dbt_version_override or None,
            target_name_override=self.target_name_override or None,
            threads_override=to_optional_int("threads_override", self.threads_override),
            timeout_seconds_override=to_optional_int(
                "timeout_seconds_override", self.timeout_seconds_override
            ),
            generate_docs_override=self.generate_docs_override,
            github_pull_request_id=to_optional_int("github_pull_request_id", self.github_pull_request_id),
            gitlab_merge_request_id=to_optional_int("gitlab_merge_request_id", self.gitlab_merge_request_id),
            azure_pull_request_id=to_optional_int("azure_pull_request_id", self.azure_pull_request_id),
            non_native_pull_request_id=to_optional_int(
                "non_native_pull_request_id", self.non_native_pull_request_id
            ),
            extra=dict(self.additional_run_config or {}),
        )

    def _openlineage_cause(self, context: Context, cause: str) -> str:
        """The cause replaced by this task's OpenLineage parent run (JSON), when it can be."""
        parent = parent_run_cause(context["ti"], MAX_CAUSE_LENGTH)
        if parent is None:
            self.log.warning(
                "%s: OpenLineage parent run not injected (no OpenLineage provider, or it does not fit "
                "in %d characters); the run's cause stays %r",
                self.task_id, MAX_CAUSE_LENGTH, cause,
            )  # fmt: skip
            return cause
        return parent

    def _default_cause(self, context: Context) -> str:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        task = self.task_id if map_index is None or map_index < 0 else f"{self.task_id}[{map_index}]"
        return f"Airflow: DAG {self.dag_id}, task {task}, run {context.get('run_id', ti.run_id)}"

    # --- waiting and finishing -------------------------------------------------------------------

    def _defer(self, run_id: int, deadline: float) -> None:
        if self.cancel_on_kill:
            warn_no_trigger_on_kill(self.log)
        self.defer(
            trigger=DbtCloudRunTrigger(
                run_id=run_id,
                dbt_cloud_conn_id=self.dbt_cloud_conn_id,
                account_id=to_optional_int("account_id", self.account_id),
                poll_interval=self.check_interval,
                end_time=deadline,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def _wait(self, context: Context, client: DbtCloudClient, run_id: int, deadline: float) -> int:
        """Poll until the run ends, streaming step logs; cancel it when the deadline passes."""
        steps = _StepLogStream(self.log)
        while True:
            try:
                run = client.get_run(run_id, include_steps=True)
            except DbtCloudTransientError as exc:
                self.log.warning("dbt Cloud run %s: status check failed (%s); polling again", run_id, exc)
            else:
                steps.update(run)
                if run.is_terminal:
                    return self._finish(context, client, run, steps)
            remaining = deadline - time.time()
            if remaining <= 0:
                self._cancel_after_timeout(client, run_id)
            time.sleep(min(self.check_interval, remaining))

    def _cancel_after_timeout(self, client: DbtCloudClient, run_id: int) -> None:
        cancelled = "cancelled it"
        try:
            client.cancel_run(run_id)
        except DbtCloudError as exc:
            cancelled = f"could not cancel it ({exc}); cancel it in dbt Cloud"
        raise DbtCloudRunError(
            f"dbt Cloud run {run_id} did not finish within timeout={self.timeout:g}s; {cancelled}"
        )

    def _finish(
        self, context: Context, client: DbtCloudClient, run: Run, steps: _StepLogStream | None = None
    ) -> int:
        """Log the steps, push the summary, and return the run id or raise why it did not succeed."""
        if steps is not None:
            steps.update(run, final=True)  # blocking: the lines not streamed yet
        else:
            _log_step_summary(self.log, run)  # resumed or adopted at its end: summary, failures' logs
        url = client.run_url(run)
        context["ti"].xcom_push(key=RUN_SUMMARY_KEY, value=run_summary(run, url))
        if run.status is RunStatus.SUCCESS:
            self.log.info("dbt Cloud run %s succeeded%s", run.id, _took(run.duration_seconds))
            lineage = openlineage_enabled()
            if self.asset_alias or lineage:
                artifacts = self._run_artifacts(client, run)
                if artifacts is not None and self.asset_alias:
                    self._emit_assets(context, run, *artifacts)
                self._lineage_artifacts = artifacts if lineage else None
            return run.id
        raise DbtCloudRunError(failure_message(run, url))

    def _run_artifacts(self, client: DbtCloudClient, run: Run) -> tuple[Any, Any] | None:
        """The run's ``run_results.json`` and ``manifest.json`` (last step), fetched once for both
        Asset events and OpenLineage. Missing ones (a job that saves none) are a warning only: the
        run itself succeeded."""
        try:
            run_results = client.get_artifact_json(run.id, "run_results.json")
            manifest = client.get_artifact_json(run.id, "manifest.json")
        except (DbtCloudError, ValueError) as exc:
            self.log.warning("dbt Cloud run %s: no Asset events or lineage: %s", run.id, exc)
            return None
        return run_results, manifest

    def _emit_assets(self, context: Context, run: Run, run_results: Any, manifest: Any) -> None:
        """One Asset event per relation the run built, through the ``asset_alias`` outlet."""
        try:
            built = built_assets(run_results, manifest)
        except (KeyError, ValueError) as exc:
            self.log.warning("dbt Cloud run %s: no Asset events, artifacts unusable: %s", run.id, exc)
            return
        events = context["outlet_events"][AssetAlias(name=str(self.asset_alias))]
        for asset in built:
            events.add(Asset(uri=asset.uri), extra={"dbt_cloud_run_id": run.id, "unique_id": asset.unique_id})
        self.log.info("emitted %d Asset event(s) through alias %r", len(built), self.asset_alias)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage inputs/outputs of the run: the sources it read and the relations it built.

        Called by the OpenLineage provider when it is installed and enabled; the datasets come from
        the run's artifacts, named as for local dbt runs (``<adapter>://<database>``, as dbt Cloud
        artifacts carry no warehouse host).
        """
        if self._lineage_artifacts is None:
            return None
        run_results, manifest = self._lineage_artifacts
        try:
            return operator_lineage(run_results, manifest)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.log.warning("dbt Cloud run %s: no OpenLineage datasets: %s", self.run_id, exc)
            return None


# --- artifacts, listings, cancel --------------------------------------------------------------------


class DbtCloudGetRunArtifactOperator(BaseOperator):
    """Download one or several artifacts of a run, or return them as JSON.

    :param run_id: The run.
    :param path: Artifact path(s) under ``target/`` (``manifest.json``, ``run_results.json``, ...).
    :param step: 1-based step index; defaults to the run's last step (as dbt Cloud does).
    :param output_file_name: For one artifact: the file to write; default ``<run_id>_<path>``.
    :param output_dir: For several artifacts: the directory to write them to; default the working dir.
    :param return_json: Return the parsed JSON (a dict per path for several) instead of writing files.
        Beware of XCom size limits with large manifests.
    :return: The written file's path (one artifact), ``{path: file}`` (several), or the JSON.
    """

    template_fields: Sequence[str] = (
        "dbt_cloud_conn_id",
        "run_id",
        "path",
        "account_id",
        "step",
        "output_file_name",
        "output_dir",
    )

    def __init__(
        self,
        *,
        run_id: int | str,
        path: str | list[str],
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        step: int | str | None = None,
        output_file_name: str | None = None,
        output_dir: str | None = None,
        return_json: bool = False,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.run_id = run_id
        self.path = path
        self.account_id = account_id
        self.step = step
        self.output_file_name = output_file_name
        self.output_dir = output_dir
        self.return_json = return_json
        self.hook_params = hook_params or {}

    def _paths(self) -> list[str]:
        paths = [self.path] if isinstance(self.path, str) else list(self.path or [])
        if not paths or any(not isinstance(p, str) or not p.strip() for p in paths):
            raise ValueError(
                f"{self.task_id}: path must be an artifact path or a list of them, got {self.path!r}"
            )
        if len(paths) > 1 and self.output_file_name:
            raise ValueError(
                f"{self.task_id}: output_file_name names one file; use output_dir for several paths"
            )
        return [p.strip().lstrip("/") for p in paths]

    def execute(self, context: Context) -> Any:
        run_id = to_int("run_id", self.run_id)
        step = to_optional_int("step", self.step)
        paths = self._paths()
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
            if self.return_json:
                docs = {p: client.get_artifact_json(run_id, p, step=step) for p in paths}
                return docs[paths[0]] if isinstance(self.path, str) else docs
            files = {p: str(self._download(client, run_id, p, step)) for p in paths}
        return files[paths[0]] if isinstance(self.path, str) else files

    def _download(self, client: DbtCloudClient, run_id: int, path: str, step: int | None) -> Path:
        name = self.output_file_name or f"{run_id}_{path}".replace("/", "-")
        target = Path(name) if self.output_file_name else Path(self.output_dir or ".") / name
        written = client.download_artifact(run_id, path, target, step=step)
        self.log.info("wrote %s of dbt Cloud run %s to %s", path, run_id, written)
        return written


class DbtCloudListJobsOperator(BaseOperator):
    """List the account's jobs (optionally of one project/environment); returns their ids.

    :param order_by: ``id``, ``name``, ``created_at`` or ``updated_at``; prefix ``-`` for descending.
    """

    template_fields: Sequence[str] = ("dbt_cloud_conn_id", "account_id", "project_id", "environment_id")
    _ORDER_FIELDS = ("id", "name", "created_at", "updated_at")

    def __init__(
        self,
        *,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        project_id: int | str | None = None,
        environment_id: int | str | None = None,
        order_by: str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if order_by and order_by.lstrip("-") not in self._ORDER_FIELDS:
            raise ValueError(
                f"{self.task_id}: order_by must be one of {', '.join(self._ORDER_FIELDS)} "
                f"(prefix '-' for descending), got {order_by!r}"
            )
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = account_id
        self.project_id = project_id
        self.environment_id = environment_id
        self.order_by = order_by
        self.hook_params = hook_params or {}

    def execute(self, context: Context) -> list[int]:
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
            jobs = client.list_jobs(
                project_id=to_optional_int("project_id", self.project_id),
                environment_id=to_optional_int("environment_id", self.environment_id),
            )
        if self.order_by:
            field = self.order_by.lstrip("-")
            jobs = sorted(
                jobs,
                key=lambda j: (getattr(j, field) is None, getattr(j, field) or 0),
                reverse=self.order_by.startswith("-"),
            )
        ids = [j.id for j in jobs]
        self.log.info("dbt Cloud jobs: %s", ", ".join(f"{j.id} {j.name!r}" for j in jobs) or "none")
        return ids


class DbtCloudListRunsOperator(BaseOperator):
    """List runs of the account or one job, newest first; returns them as dicts (or the latest only).

    :param status_filter: A run status code or codes (1 queued, 2 starting, 3 running, 10 success,
        20 error, 30 cancelled).
    :param limit: At most this many runs (default 100; the API is paged).
    """

    template_fields: Sequence[str] = ("dbt_cloud_conn_id", "account_id", "job_id", "order_by")

    def __init__(
        self,
        *,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        job_id: int | str | None = None,
        order_by: str | None = None,
        status_filter: int | list[int] | None = None,
        latest_only: bool = False,
        limit: int | None = 100,
        include_related: list[str] | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = account_id
        self.job_id = job_id
        self.order_by = order_by
        self.status_filter = status_filter
        self.latest_only = latest_only
        self.limit = limit
        self.include_related = include_related
        self.hook_params = hook_params or {}

    def execute(self, context: Context) -> list[dict[str, Any]] | dict[str, Any] | None:
        status: list[RunStatus | int] | None = None
        if self.status_filter is not None:
            codes = [self.status_filter] if isinstance(self.status_filter, int) else list(self.status_filter)
            status = [RunStatus.parse(c) for c in codes]
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
            runs = client.list_runs(
                job_id=to_optional_int("job_id", self.job_id),
                status=status,
                order_by=self.order_by or "-id",
                limit=1 if self.latest_only else self.limit,
            )
            result = [run_to_dict(r, client.run_url(r)) for r in runs]
        self.log.info("found %d dbt Cloud run(s)", len(result))
        if self.latest_only:
            return result[0] if result else None
        return result


class DbtCloudCancelRunOperator(BaseOperator):
    """Cancel a run and (by default) wait until dbt Cloud reports it ended; returns its final status.

    A run that already ended is left as it is (cancelling is idempotent).
    """

    template_fields: Sequence[str] = ("dbt_cloud_conn_id", "account_id", "run_id")

    def __init__(
        self,
        *,
        run_id: int | str,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        wait_for_termination: bool = True,
        timeout: float = 300,
        check_interval: float = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = account_id
        self.wait_for_termination = wait_for_termination
        self.timeout = float(timeout)
        self.check_interval = float(check_interval)

    def execute(self, context: Context) -> str:
        run_id = to_int("run_id", self.run_id)
        with dbt_cloud_client(
            self.dbt_cloud_conn_id, to_optional_int("account_id", self.account_id)
        ) as client:
            run = client.get_run(run_id)
            if run.is_terminal:
                self.log.info("dbt Cloud run %s already ended (%s)", run_id, run.status.name.lower())
                return run.status.name.lower()
            run = client.cancel_run(run_id)
            deadline = time.time() + self.timeout
            while self.wait_for_termination and not run.is_terminal:
                if time.time() >= deadline:
                    raise DbtCloudRunError(
                        f"dbt Cloud run {run_id} was asked to cancel but is still "
                        f"{run.status.name.lower()} after {self.timeout:g}s"
                    )
                time.sleep(self.check_interval)
                run = client.get_run(run_id)
        self.log.info("dbt Cloud run %s is %s", run_id, run.status.name.lower())
        return run.status.name.lower()


#: Names of ``apache-airflow-providers-dbt-cloud``, so a migrated DAG only changes its imports.
DbtCloudGetJobRunArtifactOperator = DbtCloudGetRunArtifactOperator
DbtCloudListJobRunsOperator = DbtCloudListRunsOperator

__all__ = [
    "RUN_SUMMARY_KEY",
    "STATE_STORE_KEY",
    "DbtCloudCancelRunOperator",
    "DbtCloudGetJobRunArtifactOperator",
    "DbtCloudGetRunArtifactOperator",
    "DbtCloudListJobRunsOperator",
    "DbtCloudListJobsOperator",
    "DbtCloudListRunsOperator",
    "DbtCloudRunError",
    "DbtCloudRunJobOperator",
    "RunStart",
    "RunStartDecision",
    "StoredRun",
    "decide_run_start",
]
