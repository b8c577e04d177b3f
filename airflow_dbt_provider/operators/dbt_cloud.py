"""Operators that drive dbt Cloud: run a job, fetch artifacts, list jobs and runs, cancel a run.

Parameter names, XCom keys (``job_run_id``, ``job_run_url``) and return values are those of
``apache-airflow-providers-dbt-cloud`` (``docs/dbt_cloud_operators.md`` says where we differ and
why). The operators are the Airflow side only: how a try gets its run (adopt, retry or trigger)
is decided in :mod:`airflow_dbt_provider.cloud.run_start`, what a run looks like in the task log,
XCom and errors in :mod:`airflow_dbt_provider.cloud.reports`, the trigger fields are checked in
:mod:`airflow_dbt_provider.cloud.options`, and the connection, account and client come from
:class:`~airflow_dbt_provider.dbt_cloud_base.DbtCloudBaseOperator`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias

from airflow_dbt_provider.assets import built_assets, emit_asset_events
from airflow_dbt_provider.cloud import (
    DbtCloudClient,
    DbtCloudError,
    DbtCloudTransientError,
    Job,
    Run,
    RunStatus,
    TriggerRunOptions,
)
from airflow_dbt_provider.cloud.coerce import is_deferred, to_int, to_optional_int
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.cloud.events import RunEventStatus
from airflow_dbt_provider.cloud.options import (
    MAX_CAUSE_LENGTH,
    TRIGGER_PARAMETERS,
    RunConfigOverride,
    describe_overrides,
    trigger_fields,
)
from airflow_dbt_provider.cloud.reports import (
    StepLogStream,
    failure_message,
    log_step_summary,
    run_summary,
    took,
)
from airflow_dbt_provider.cloud.run_start import (
    RunStart,
    StoredRun,
    TaskInstanceRef,
    compose_cause,
    compose_lineage_cause,
    lineage_room,
    plan_run_start,
)
from airflow_dbt_provider.compat import conf, warn_no_trigger_on_kill
from airflow_dbt_provider.dbt_cloud_base import (
    DEFAULT_CONN_ID,
    DEFAULT_RUN_TIMEOUT_S,
    DbtCloudBaseOperator,
    DbtCloudRunError,
)
from airflow_dbt_provider.lineage import openlineage_enabled, operator_lineage, parent_run_cause
from airflow_dbt_provider.links.dbt_cloud import (
    JOB_RUN_ID_KEY,
    JOB_RUN_URL_KEY,
    DbtCloudRunLink,
    record_run_url,
)
from airflow_dbt_provider.operators.dbt_cloud_runs import (  # the others, importable from here too
    DbtCloudCancelRunOperator,
    DbtCloudGetJobRunArtifactOperator,
    DbtCloudGetRunArtifactOperator,
    DbtCloudListJobRunsOperator,
    DbtCloudListJobsOperator,
    DbtCloudListRunsOperator,
)
from airflow_dbt_provider.task_state import TaskStateStore
from airflow_dbt_provider.triggers.dbt_cloud import DEFERRED_TRY_XCOM_KEY, DbtCloudRunTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the JSON summary of a finished run (status, duration, steps, failed steps).
RUN_SUMMARY_KEY = "dbt_cloud_run_summary"
#: Task state store key of the run a try started; survives retries (XComs do not).
STATE_STORE_KEY = "dbt_cloud_run"
DEFAULT_CHECK_INTERVAL = 60
#: What a try does when the task state store is absent or fails.
WITHOUT_STORE = "a retry finds its dbt Cloud run by the marker in the run's cause"


def _dag_run_start(context: Context) -> datetime | None:
    """When this DAG run started (or became due): no try of it triggered a run before then."""
    dag_run = context.get("dag_run")
    return getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)


# --- run a job -------------------------------------------------------------------------------------


class DbtCloudRunJobOperator(DbtCloudBaseOperator):
    """Run a dbt Cloud job and (by default) wait for it, without ever starting a duplicate on retry.

    Parameters of :class:`~airflow_dbt_provider.dbt_cloud_base.DbtCloudBaseOperator` (the connection,
    ``account_id``, ``hook_params``) and:

    :param job_id: The job to run. Alternatively give ``project_name``, ``environment_name`` and ``job_name``.
    :param project_name: Project of the job, when it is looked up by name.
    :param environment_name: Environment of the job, when it is looked up by name.
    :param job_name: Name of the job, when it is looked up by name (exactly one match is required).
    :param trigger_reason: The run's ``cause``; defaults to one naming the DAG, task and DAG run.
        The task instance's marker (``[airflow:<hash>:<try>:<max_tries>]``) is appended, the reason
        shortened so both fit in 255 characters: a retry finds its run by it.
    :param steps_override: dbt commands to run instead of the job's.
    :param schema_override: Target schema override.
    :param additional_run_config: Trigger fields sent to dbt Cloud as they are, as the official
        provider does (``payload.update(additional_run_config)``): every entry is sent, and an entry
        named like one of this operator's parameters (``threads_override``, ``git_branch``, ``cause``...)
        wins over that parameter, with a warning naming both.
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
    :param durable: Airflow's ``ResumableJobMixin`` flag: ``True`` (default) is what this operator always
        does (a retry finds its run and reconnects); ``False`` is ignored, with a warning.
    :return: The run id (an int).
    """

    template_fields: Sequence[str] = (
        *DbtCloudBaseOperator.template_fields,
        "job_id",
        "project_name",
        "environment_name",
        "job_name",
        "additional_run_config",
        *TRIGGER_PARAMETERS,
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
        timeout: float = DEFAULT_RUN_TIMEOUT_S,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        retry_from_failure: bool = False,
        reuse_existing_run: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        asset_alias: str | None = None,
        openlineage_inject_parent_job_info: bool = False,
        hook_params: dict[str, Any] | None = None,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), AssetAlias(name=asset_alias)]
        super().__init__(
            dbt_cloud_conn_id=dbt_cloud_conn_id, account_id=account_id, hook_params=hook_params, **kwargs
        )
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
        parameters = locals()  # the trigger fields, by name: listed once, in TRIGGER_PARAMETERS
        for name in TRIGGER_PARAMETERS:
            setattr(self, name, parameters[name])
        self.job_id = job_id
        self.project_name = project_name
        self.environment_name = environment_name
        self.job_name = job_name
        self.additional_run_config = {} if additional_run_config is None else additional_run_config
        self.wait_for_termination = wait_for_termination
        self.timeout = float(timeout)
        self.check_interval = float(check_interval)
        self.retry_from_failure = retry_from_failure
        self.reuse_existing_run = reuse_existing_run
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.asset_alias = asset_alias
        self.run_id: int | None = None
        self._lineage_artifacts: tuple[Any, Any] | None = None
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.durable = durable
        if not durable:
            self.log.warning(
                "%s: durable=False is ignored: this operator always keeps its dbt Cloud run in the task "
                "state store and reconnects to it on a retry, so a retry never starts a duplicate run",
                self.task_id,
            )
        self._check_trigger_fields()

    # --- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> int:
        record_run_url(self, "")  # a new try: no job_run_url until the run exists
        with self.new_client() as client:
            job_id = self._resolve_job_id(client)
            run = self._start_run(client, job_id, context)
            self.run_id = run.id
            url = client.run_url(run)
            context["ti"].xcom_push(key=JOB_RUN_ID_KEY, value=run.id)
            context["ti"].xcom_push(key=JOB_RUN_URL_KEY, value=url)
            record_run_url(self, url)
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
                    self._defer(context, run.id, deadline)
                return self._finish(context, client, client.get_run(run.id, include_steps=True))
            return self._wait(context, client, run.id, deadline)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int:
        """Resume after the trigger fired: report the run, cancel it on timeout, or fail."""
        resumed = self.read_event(event)
        self.run_id = resumed.run_id
        with self.new_client() as client:
            if resumed.status is RunEventStatus.TIMEOUT:
                self._cancel_after_timeout(client, self.run_id)
            if resumed.status is RunEventStatus.FAILED:
                raise DbtCloudRunError(
                    f"could not watch dbt Cloud run {self.run_id}: {resumed.message}. The run may still "
                    "be going in dbt Cloud; check it there and fix the connection."
                )
            return self._finish(context, client, client.get_run(self.run_id, include_steps=True))

    def on_kill(self) -> None:
        """Cancel the run when the task is killed while waiting in blocking mode."""
        if not self.cancel_on_kill or self.run_id is None or not self.wait_for_termination:
            return
        self.log.info("task killed: cancelling dbt Cloud run %s", self.run_id)
        try:
            with self.new_client() as client:
                client.cancel_run(self.run_id)
        except DbtCloudError as exc:
            self.log.warning("could not cancel dbt Cloud run %s: %s", self.run_id, exc)

    # --- starting the run ------------------------------------------------------------------------

    def _resolve_job_id(self, client: DbtCloudClient) -> int:
        if self.job_id is not None and self.job_id != "":
            return to_int("job_id", self.job_id)
        job: Job = client.find_job(str(self.project_name), str(self.environment_name), str(self.job_name))
        self.log.info(
            "job %r in %s/%s is job %s", self.job_name, self.project_name, self.environment_name, job.id
        )
        return job.id

    def _start_run(self, client: DbtCloudClient, job_id: int, context: Context) -> Run:
        """Adopt, retry or trigger a run as :func:`plan_run_start` decides; persist it before waiting."""
        ti = TaskInstanceRef.of(context["ti"], context.get("run_id"))
        store = TaskStateStore(context, self.log, without=WITHOUT_STORE)
        decision = plan_run_start(
            client,
            job_id=job_id,
            ti=ti,
            stored=StoredRun.from_state(store.get(STATE_STORE_KEY)),
            since=_dag_run_start(context),
            retry_from_failure=self.retry_from_failure,
            reuse_existing_run=self.reuse_existing_run,
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
            run = client.trigger_run(job_id, self._trigger_options(context, ti))
            self.log.info("triggered dbt Cloud run %s of job %s", run.id, job_id)
        store.set(STATE_STORE_KEY, StoredRun(run.id, job_id, ti.try_number, ti.max_tries).to_state())
        return run

    def _trigger_options(self, context: Context, ti: TaskInstanceRef) -> TriggerRunOptions:
        """Every trigger field; the cause always ends with the task instance's marker (<= 255 chars),
        also when ``additional_run_config`` sets it."""
        fields, overrides = self._trigger_fields()
        if overrides:
            self.log.warning("%s", describe_overrides(overrides))
        cause = compose_cause(fields.pop("cause", None) or ti.default_reason, ti)
        if self.openlineage_inject_parent_job_info:
            cause = self._openlineage_cause(context, cause, ti)
        return TriggerRunOptions.with_cause(cause, **fields)

    def _trigger_fields(self, *, static: bool = False) -> tuple[dict[str, Any], list[RunConfigOverride]]:
        """The trigger fields: the explicit parameters, updated by ``additional_run_config``.

        With ``static`` (at DAG-parse time), values only known at run time count as not set.
        """

        return trigger_fields(
            {name: getattr(self, name) for name in TRIGGER_PARAMETERS},
            self.additional_run_config,
            static=static,
        )

    def _check_trigger_fields(self) -> None:
        """At DAG-parse time, every trigger field that is not a template: the error names the user's
        parameter, so a typo fails the DAG import rather than a scheduled run."""
        try:
            for name in ("job_id", "account_id"):
                if not is_deferred(getattr(self, name)):
                    to_optional_int(name, getattr(self, name))
            fields, _ = self._trigger_fields(static=True)
            TriggerRunOptions.with_cause(fields.pop("cause", None) or "parse-time check", **fields)
        except (ValueError, DbtCloudConfigError) as exc:
            raise ValueError(f"{self.task_id}: {exc}") from None

    def _openlineage_cause(self, context: Context, cause: str, ti: TaskInstanceRef) -> str:
        """The cause replaced by this task's OpenLineage parent run (JSON, marker added), if it fits."""
        parent = parent_run_cause(context["ti"], lineage_room(ti))
        marked = compose_lineage_cause(parent, ti) if parent is not None else None
        if marked is None:
            self.log.warning(
                "%s: OpenLineage parent run not injected (no OpenLineage provider, or it does not fit "
                "in %d characters); the run's cause stays %r",
                self.task_id, MAX_CAUSE_LENGTH, cause,
            )  # fmt: skip
            return cause
        return marked

    # --- waiting and finishing -------------------------------------------------------------------

    def _defer(self, context: Context, run_id: int, deadline: float) -> None:
        """Hand the run to the trigger, with the try that defers it.

        The try goes into the trigger's kwargs and into an XCom of the same try: the trigger's
        ``on_kill`` compares the two to tell its own try, reassigned, from a cleared-and-deferred-again one.
        """
        try_number = int(getattr(context["ti"], "try_number", 0) or 0)
        context["ti"].xcom_push(key=DEFERRED_TRY_XCOM_KEY, value=try_number)
        warn_no_trigger_on_kill(self.log, self.cancel_on_kill)
        self.defer(
            trigger=DbtCloudRunTrigger(
                run_id=run_id,
                dbt_cloud_conn_id=self.dbt_cloud_conn_id,
                account_id=self.account,
                poll_interval=self.check_interval,
                end_time=deadline,
                cancel_on_kill=self.cancel_on_kill,
                try_number=try_number,
            ),
            method_name="execute_complete",
        )

    def _wait(self, context: Context, client: DbtCloudClient, run_id: int, deadline: float) -> int:
        """Poll until the run ends, streaming step logs; cancel it when the deadline passes."""
        steps = StepLogStream(self.log)
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
        self, context: Context, client: DbtCloudClient, run: Run, steps: StepLogStream | None = None
    ) -> int:
        """Log the steps, push the summary, and return the run id or raise why it did not succeed."""
        if steps is not None:
            steps.update(run, final=True)  # blocking: the lines not streamed yet
        else:
            log_step_summary(self.log, run)  # resumed or adopted at its end: summary, failures' logs
        url = client.run_url(run)
        context["ti"].xcom_push(key=RUN_SUMMARY_KEY, value=run_summary(run, url))
        if run.status is RunStatus.SUCCESS:
            self.log.info("dbt Cloud run %s succeeded%s", run.id, took(run.duration_seconds))
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
        emit_asset_events(context, str(self.asset_alias), built, self.log, {"dbt_cloud_run_id": run.id})

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
]
