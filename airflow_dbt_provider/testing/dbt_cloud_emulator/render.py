"""Turn emulator state into API objects, in two dialects.

*Strict* (the default) answers exactly as the OpenAPI spec (``openapi-v2.yaml``/``-v3.yaml``)
describes: required fields always present, no ``null`` where the spec does not allow one, optional
fields omitted when unknown, nothing the spec does not declare. *Lenient* answers the way the live
service does in the recorded responses: ``null`` for unset fields (even non-nullable ones), extra
undeclared fields (``scribe_enabled``, ``cron_humanized``...), relations the client did not ask for
present as ``null``, ``"YYYY-MM-DD HH:MM:SS+00:00"`` timestamps on runs, and spec-required account
fields missing. Clients that pass against both are ready for the real thing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_dbt_provider.testing.dbt_cloud_emulator.config import AccountSpec, EnvironmentSpec, ProjectSpec
from airflow_dbt_provider.testing.dbt_cloud_emulator.state import (
    ERROR,
    STATUS_NAMES,
    Job,
    Run,
    RunProgress,
    State,
    partial_log,
    progress,
)

GIT_SHA = "3c8f5b1d0e2a4f6b8c9d7e5f1a2b3c4d5e6f7a8b"


def iso(epoch: float) -> str:
    """RFC 3339 timestamp, as the spec's ``format: date-time`` requires."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def live_ts(epoch: float) -> str:
    """The live service's run timestamp format (space separator), e.g. ``2021-12-07 10:32:24.3+00:00``."""
    return str(dt.datetime.fromtimestamp(epoch, dt.timezone.utc))


def hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def humanized(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    if not minutes:
        return f"{secs} second{'s' if secs != 1 else ''}"
    text = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return text + (f", {secs} second{'s' if secs != 1 else ''}" if secs else "")


def status_block(
    code: int = 200, user_message: str = "Success!", developer_message: str = ""
) -> dict[str, Any]:
    return {
        "code": code,
        "is_success": 200 <= code < 300,
        "user_message": user_message,
        "developer_message": developer_message,
    }


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


class Renderer:
    """Builds response objects from :class:`State` for one dialect (strict or lenient)."""

    def __init__(self, state: State, base_url: str, lenient: bool) -> None:
        self.state = state
        self.base_url = base_url
        self.lenient = lenient

    def _finish(self, data: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Strict: drop unset (None) fields. Lenient: keep them as null and add live-only extras."""
        if self.lenient:
            return {**data, **(extra or {})}
        return _drop_none(data)

    # ---------------------------------------------------------------------------------- accounts
    def account(self, account: AccountSpec) -> dict[str, Any]:
        created = iso(self.state.created_at)
        if self.lenient:  # the recorded live account: nulls, extras, spec-required fields missing
            return {
                "docs_job_id": None,
                "freshness_job_id": None,
                "lock_reason": None,
                "unlock_if_subscription_renewed": False,
                "read_only_seats": 10,
                "id": account.id,
                "name": account.name,
                "state": 1,
                "plan": account.plan,
                "pending_cancel": False,
                "run_slots": 15,
                "developer_seats": 10,
                "queue_limit": 50,
                "pod_memory_request_mebibytes": 600,
                "run_duration_limit_seconds": 86400,
                "enterprise_authentication_method": None,
                "enterprise_login_slug": None,
                "enterprise_unique_identifier": None,
                "billing_email_address": None,
                "locked": False,
                "develop_file_system": True,
                "unlocked_at": None,
                "created_at": created,
                "updated_at": created,
                "starter_repo_url": None,
                "sso_reauth": False,
                "git_auth_level": "personal",
                "identifier": f"act_{account.id}",
                "docs_job": None,
                "freshness_job": None,
                "enterprise_login_url": f"{self.base_url}/enterprise-login/None/",
            }
        return {
            "account_migration_events": [],
            "agent_credit_locked": False,
            "analyst_seats": 0,
            "billing_email_address": "billing@example.com",
            "business_critical": False,
            "copilot_locked_until": created,
            "created_at": created,
            "develop_pod_memory_request_mebibytes": 0,
            "developer_seats": 10,
            "enterprise_login_slug": f"emulated-{account.id}",
            "explorer_seats": 0,
            "git_auth_level": "personal",
            "groups": [],
            "id": account.id,
            "identifier": f"act_{account.id}",
            "it_seats": 0,
            # The spec requires a lock cause even for an unlocked account; "other" is the neutral one.
            "lock_cause": "other",
            "lock_reason": "",
            "locked": False,
            "name": account.name,
            "pending_cancel": False,
            "plan": account.plan,
            "pod_memory_request_mebibytes": 600,
            "queue_limit": 50,
            "read_only_seats": 10,
            "run_duration_limit_seconds": 86400,
            "run_locked_until": created,
            "run_slots": 15,
            "starter_repo_url": "https://github.com/dbt-labs/dbt-starter-project",
            "state": 1,
            "static_subdomain": f"emulated-{account.id}",
            "trial_end_date": created,
            "unlocked_at": created,
            "updated_at": created,
            "vanity_subdomain": f"emulated-{account.id}",
        }

    # ---------------------------------------------------------------------------------- projects
    def _project_core(self, project: ProjectSpec, account_id: int) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "connection_id": project.id,
            "dbt_project_subdirectory": None,
            "description": project.description,
            "docs_job_id": None,
            "freshness_job_id": None,
            "name": project.name,
            "repository_id": project.id,
            "semantic_layer_config_id": None,
            "state": 1,
            "type": 0,
        }

    def project(self, project: ProjectSpec, account_id: int) -> dict[str, Any]:
        created = iso(self.state.created_at)
        data = {
            **self._project_core(project, account_id),
            "id": project.id,
            "created_at": created,
            "updated_at": created,
            "default_version": "latest",
            "fusion_readiness": None,
            "group_permissions": [],
            "environments": [
                self._environment_v3(env, project.id, account_id) for env in project.environments
            ],
        }
        if self.lenient:  # live: relations not configured are null
            data.update(connection=None, repository=None, docs_job=None, freshness_job=None)
            return data
        data = _drop_none(data)
        data["fusion_readiness"] = None  # declared without a type: any value, null included
        data["connection"] = {
            "account_id": account_id,
            "name": "DuckDB",
            "project_id": project.id,
            "state": 1,
            "type": "adapter",
        }
        data["repository"] = {
            "account_id": account_id,
            "project_id": project.id,
            "state": 1,
            "full_name": f"emulated/{project.name}",
            "remote_backend": "managed",
        }
        # JobDefinitionV2 (docs_job/freshness_job) declares no lifecycle_webhooks.
        jobs = [
            {k: v for k, v in self._job_core(j).items() if k != "lifecycle_webhooks"}
            for j in self.state.jobs.values()
            if j.project_id == project.id
        ]
        # The spec makes docs_job/freshness_job required objects; the project's first job stands in.
        first = jobs[0] if jobs else self._placeholder_job(project, account_id)
        data["docs_job"] = first
        data["freshness_job"] = first
        return data

    def _placeholder_job(self, project: ProjectSpec, account_id: int) -> dict[str, Any]:
        env_id = project.environments[0].id if project.environments else 0
        return {
            "account_id": account_id,
            "environment_id": env_id,
            "execution": {"timeout_seconds": 0},
            "generate_docs": False,
            "name": "docs",
            "project_id": project.id,
            "run_generate_sources": False,
            "settings": {"target_name": "default", "threads": 4},
            "state": 1,
        }

    # ------------------------------------------------------------------------------ environments
    def _environment_v3(self, env: EnvironmentSpec, project_id: int, account_id: int) -> dict[str, Any]:
        return self._finish(
            {
                "account_id": account_id,
                "connection_id": project_id,
                "credentials_id": env.id,
                "custom_branch": None,
                "dbt_version": env.dbt_version,
                "deployment_type": env.deployment_type,
                "enable_dbt_state": False,
                "enable_model_query_history": False,
                "extended_attributes_id": None,
                "name": env.name,
                "project_id": project_id,
                "state": 1,
                "supports_docs": False,
                "type": env.type,
                "use_custom_branch": False,
            }
        )

    def environment(self, env: EnvironmentSpec, project_id: int, account_id: int) -> dict[str, Any]:
        created = iso(self.state.created_at)
        project, _ = self.state.projects[project_id]
        data = {
            **self._environment_v3(env, project_id, account_id),
            "id": env.id,
            "created_at": created,
            "updated_at": created,
            "fusion_readiness": None,
            "is_deferrable": env.deployment_type == "production",
            "raw_dbt_version": "1.12.6" if env.dbt_version == "latest" else env.dbt_version,
            "primary_profile_id": None if self.lenient else env.id,
            "project": self._finish(self._project_core(project, account_id)),
            "credentials": {
                "account_id": account_id,
                "default_schema": "analytics",
                "project_id": project_id,
                "state": 1,
                "target_name": "default",
                "threads": 4,
                "type": "adapter",
                "username": "emulator",
            },
        }
        if not self.lenient:
            data = _drop_none(data)
            data["fusion_readiness"] = None
        return data

    def environment_v2(self, env_id: int) -> dict[str, Any]:
        env, project_id, account_id = self.state.environments[env_id]
        return self._finish(
            {
                "account_id": account_id,
                "connection_id": project_id,
                "credentials_id": env.id,
                "custom_branch": None,
                "dbt_project_subdirectory": None,
                "dbt_version": env.dbt_version,
                "deployment_type": env.deployment_type,
                "name": env.name,
                "project_id": project_id,
                "repository_id": project_id,
                "state": 1,
                "supports_docs": False,
                "type": env.type,
                "use_custom_branch": False,
            }
        )

    # -------------------------------------------------------------------------------------- jobs
    def _job_core(self, job: Job) -> dict[str, Any]:
        spec, body = job.spec, job.body
        data: dict[str, Any] = {
            "account_id": job.account_id,
            "compare_changes_flags": "--select state:modified",
            "dbt_version": spec.dbt_version,
            "deferring_environment_id": body.get("deferring_environment_id"),
            "deferring_job_definition_id": body.get("deferring_job_definition_id"),
            "description": spec.description,
            "environment_id": job.environment_id,
            "errors_on_lint_failure": bool(body.get("errors_on_lint_failure", True)),
            "execute_steps": list(spec.execute_steps),
            "execution": {"timeout_seconds": spec.timeout_seconds},
            "generate_docs": spec.generate_docs,
            "job_type": spec.job_type,
            "lifecycle_webhooks": bool(body.get("lifecycle_webhooks", False)),
            "name": spec.name,
            "project_id": job.project_id,
            "run_compare_changes": bool(body.get("run_compare_changes", False)),
            "run_generate_sources": bool(body.get("run_generate_sources", False)),
            "run_lint": bool(body.get("run_lint", False)),
            "settings": {"target_name": spec.target_name, "threads": spec.threads},
            "state": job.state,
            "triggers": dict(body.get("triggers") or {"github_webhook": False, "schedule": False}),
            "triggers_on_draft_pr": False,
        }
        return self._finish(data)

    def job(self, job: Job, include: set[str] | None = None) -> dict[str, Any]:
        include = include or set()
        created, updated = iso(job.created_at), iso(job.updated_at)
        account = self.state.accounts[job.account_id]
        project, _ = self.state.projects[job.project_id]
        schedule = job.body.get("schedule") or {
            "cron": job.spec.cron,
            "date": {"type": "custom_cron", "cron": job.spec.cron},
            "time": {"type": "every_hour", "interval": 1},
        }
        data = {
            **self._job_core(job),
            "id": job.spec.id,
            "created_at": created,
            "updated_at": updated,
            "generate_sources": False,
            "is_deferrable": False,
            "job_completion_trigger_condition": None,
            "fusion_readiness": None,
            "lifecycle_webhooks_url": None
            if self.lenient
            else f"{self.base_url}/webhooks/jobs/{job.spec.id}",
            "raw_dbt_version": job.spec.dbt_version or "1.12.6",
            "run_failure_count": 0,
            "schedule": schedule,
        }
        if self.lenient:  # live (job_get.json): no account/project objects, humanized extras
            for relation in ("job_completion_trigger_condition", "fusion_readiness", "run_failure_count"):
                data.pop(relation)
            data.update(cron_humanized="Every hour", next_run=None, next_run_humanized=None)
            if "environment" in include:
                data["environment"] = self.environment_v2(job.environment_id)
            return data
        data["account"] = {"name": account.name, "state": 1}
        data["project"] = _drop_none(self._project_core(project, job.account_id))
        data["environment"] = self.environment_v2(job.environment_id)
        return data

    # -------------------------------------------------------------------------------------- runs
    def run(self, run: Run, include: set[str] | None = None, now: float | None = None) -> dict[str, Any]:
        include = include or set()
        state = self.state
        now = state.clock.now() if now is None else now
        prog = progress(run, now)
        wall = state.clock.wall_time
        ts = live_ts if self.lenient else iso
        created = wall(run.created)
        last_change = max(
            t for t in (run.created, prog.dequeued, prog.started, prog.finished) if t is not None
        )
        end = prog.finished if prog.finished is not None else now
        queued_until = prog.dequeued if prog.dequeued is not None else end
        job = run.job
        data: dict[str, Any] = {
            "id": run.id,
            "trigger_id": run.trigger_id,
            "account_id": job.account_id,
            "environment_id": job.environment_id,
            "project_id": job.project_id,
            "job_definition_id": job.spec.id,
            "job_id": job.spec.id,
            "status": prog.status,
            "status_humanized": STATUS_NAMES[prog.status],
            "status_message": self._status_message(run, prog),
            "dbt_version": job.spec.dbt_version or "1.12.6",
            "git_branch": run.overrides.get("git_branch", "main"),
            "git_sha": run.overrides.get("git_sha", GIT_SHA),
            "owner_thread_id": None,
            "executed_by_thread_id": f"dbt-run-{run.id}-emu" if prog.started is not None else None,
            "deferring_run_id": None,
            "artifacts_saved": prog.is_complete and any(s.script.artifacts for s in prog.steps),
            "artifact_s3_path": f"emulator/runs/{run.id}/artifacts/target" if prog.is_complete else None,
            "has_docs_generated": False,
            "has_sources_generated": False,
            "notifications_sent": prog.is_complete,
            "blocked_by": [],
            "created_at": ts(created),
            "updated_at": ts(wall(last_change)),
            "dequeued_at": ts(wall(prog.dequeued)) if prog.dequeued is not None else None,
            "started_at": ts(wall(prog.started)) if prog.started is not None else None,
            "finished_at": ts(wall(prog.finished)) if prog.finished is not None else None,
            "last_checked_at": None,
            "last_heartbeat_at": None,
            "should_start_at": None,
            "in_progress": not prog.is_complete,
            "is_complete": prog.is_complete,
            "is_success": prog.status == 10,
            "is_error": prog.status == ERROR,
            "is_cancelled": prog.status == 30,
            "is_running": prog.status == 3,
            # The spec names the field without its direction; here the retry names the run it retries.
            "retrying_run_id": run.retry_of,
            "can_retry": prog.status == ERROR,
            "retry_not_supported_reason": None
            if prog.status == ERROR or not prog.is_complete
            else "RETRY_NOT_FAILED_RUN",
            "used_repo_cache": False,
            "href": f"{self.base_url}/deploy/{job.account_id}/projects/{job.project_id}/runs/{run.id}/",
            "duration": hms(end - run.created),
            "queued_duration": hms(queued_until - run.created),
            "run_duration": hms(end - prog.started) if prog.started is not None else hms(0),
            "duration_humanized": humanized(end - run.created),
            "queued_duration_humanized": humanized(queued_until - run.created),
            "run_duration_humanized": humanized(end - prog.started)
            if prog.started is not None
            else humanized(0),
            "created_at_humanized": "just now",
            "finished_at_humanized": "just now" if prog.finished is not None else None,
        }
        related = {
            "trigger": self._trigger(run) if "trigger" in include else None,
            "job": self._job_core(job) if "job" in include else None,
            "environment": self.environment_v2(job.environment_id) if "environment" in include else None,
        }
        steps = self._steps(run, prog, "debug_logs" in include) if "run_steps" in include else None
        if self.lenient:
            data.update(related, run_steps=steps or [], scribe_enabled=True)
            return data
        data = _drop_none(data)
        data.update(_drop_none(related))
        if steps is not None:
            data["run_steps"] = steps
        return data

    def _status_message(self, run: Run, prog: RunProgress) -> str | None:
        if prog.status == 30:
            return "Cancelled by user."
        if prog.status == ERROR:
            return run.script.status_message or "Run failed."
        return None

    def _trigger(self, run: Run) -> dict[str, Any]:
        allowed = {
            "git_branch", "git_sha", "schema_override", "dbt_version_override", "threads_override",
            "target_name_override", "generate_docs_override", "timeout_seconds_override", "steps_override",
            "github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
            "non_native_pull_request_id",
        }  # fmt: skip
        data = {k: v for k, v in run.overrides.items() if k in allowed}
        data.update(cause=run.cause, cause_category=run.cause_category, job_definition_id=run.job.spec.id)
        return data

    def _steps(self, run: Run, prog: RunProgress, debug: bool) -> list[dict[str, Any]]:
        out = []
        wall = self.state.clock.wall_time
        for step in prog.steps:
            item: dict[str, Any] = {
                "id": run.id * 100 + step.index,
                "run_id": run.id,
                "account_id": run.job.account_id,
                "index": step.index,
                "name": step.script.name,
                "status": step.status,
                "status_humanized": STATUS_NAMES[step.status],
                "logs": partial_log(step.script.logs, step.log_fraction),
                "debug_logs": partial_log(step.script.debug_logs or step.script.logs, step.log_fraction)
                if debug
                else None,
                "started_at": iso(wall(step.started)),
                "finished_at": iso(wall(step.finished)) if step.finished is not None else None,
            }
            if not self.lenient:
                item = {k: item[k] for k in ("run_id", "account_id", "index", "name", "status", "logs")}
                if debug:
                    item["debug_logs"] = partial_log(
                        step.script.debug_logs or step.script.logs, step.log_fraction
                    )
            out.append(item)
        return out
