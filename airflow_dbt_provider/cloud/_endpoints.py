"""The dbt Cloud API endpoints the clients use, as :class:`ApiCall` builders.

One builder per operation, shared by the sync and async clients so both send identical requests.
Paths follow the published OpenAPI specification (v2 for accounts, jobs and runs; v3 for projects
and environments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from airflow_dbt_provider.cloud._core import ApiCall, require_account, status_params, v2, v3
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError, DbtCloudResponseError
from airflow_dbt_provider.cloud.models import RunStatus
from airflow_dbt_provider.cloud.options import TriggerRunOptions
from airflow_dbt_provider.cloud.settings import ClientSettings

RUN_ORDER_FIELDS = frozenset({"id", "created_at", "finished_at"})


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise DbtCloudConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DbtCloudConfigError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1 or str(number) != str(value).strip():
        raise DbtCloudConfigError(f"{name} must be a positive integer, got {value!r}")
    return number


def _in_account(settings: ClientSettings, account_id: int | None = None) -> tuple[int, str]:
    account = require_account(settings, account_id)
    return account, f"account {account}"


def get_account(settings: ClientSettings, account_id: int | None = None) -> ApiCall:
    account, where = _in_account(settings, account_id)
    return ApiCall("GET", v2(account), where)


def list_accounts() -> ApiCall:
    return ApiCall("GET", "/api/v2/accounts/", "the accounts this token can see")


def list_projects(settings: ClientSettings, name: str | None) -> ApiCall:
    account, where = _in_account(settings)
    params = {"name__icontains": name} if name else {}
    return ApiCall("GET", v3(account, "projects/"), f"projects in {where}", params, missing=where)


def get_project(settings: ClientSettings, project_id: int) -> ApiCall:
    account, where = _in_account(settings)
    project = _positive("project_id", project_id)
    return ApiCall("GET", v3(account, f"projects/{project}/"), f"project {project} in {where}")


def list_environments(settings: ClientSettings, project_id: int, name: str | None) -> ApiCall:
    account, where = _in_account(settings)
    project = _positive("project_id", project_id)
    params = {"name__icontains": name} if name else {}
    return ApiCall(
        "GET",
        v3(account, f"projects/{project}/environments/"),
        f"environments of project {project} in {where}",
        params,
        missing=f"project {project} in {where}",
    )


def get_environment(settings: ClientSettings, project_id: int, environment_id: int) -> ApiCall:
    account, where = _in_account(settings)
    project = _positive("project_id", project_id)
    environment = _positive("environment_id", environment_id)
    return ApiCall(
        "GET",
        v3(account, f"projects/{project}/environments/{environment}/"),
        f"environment {environment} of project {project} in {where}",
    )


def list_jobs(
    settings: ClientSettings,
    project_id: int | None,
    environment_id: int | None,
    name_contains: str | None,
) -> ApiCall:
    account, where = _in_account(settings)
    params: dict[str, Any] = {"order_by": "id"}
    if project_id is not None:
        params["project_id"] = _positive("project_id", project_id)
    if environment_id is not None:
        params["environment_id"] = _positive("environment_id", environment_id)
    if name_contains:
        params["name__icontains"] = name_contains
    return ApiCall("GET", v2(account, "jobs/"), f"jobs in {where}", params, missing=where)


def get_job(settings: ClientSettings, job_id: int) -> ApiCall:
    account, where = _in_account(settings)
    job = _positive("job_id", job_id)
    return ApiCall("GET", v2(account, f"jobs/{job}/"), f"job {job} in {where}")


def create_job(settings: ClientSettings, definition: dict[str, Any]) -> ApiCall:
    account, where = _in_account(settings)
    name = definition.get("name")
    return ApiCall(
        "POST",
        v2(account, "jobs/"),
        f"new job {name!r} in {where}",
        body=definition,
        idempotent=False,
        missing=where,
    )


def delete_job(settings: ClientSettings, job_id: int) -> ApiCall:
    account, where = _in_account(settings)
    job = _positive("job_id", job_id)
    return ApiCall("DELETE", v2(account, f"jobs/{job}/"), f"job {job} in {where}", expect_json=False)


def _new_run(
    settings: ClientSettings, target: str, target_id: int, action: str, what: str, body: dict[str, Any]
) -> ApiCall:
    """A POST that creates a run (trigger, rerun, retry): never idempotent, so never re-sent when it
    may have reached dbt Cloud; a 404 names the job or run it was started from."""
    account, where = _in_account(settings)
    ident = _positive(f"{target}_id", target_id)
    return ApiCall(
        "POST",
        v2(account, f"{target}s/{ident}/{action}/"),
        f"{what} {target} {ident} in {where}",
        body=body,
        idempotent=False,
        missing=f"{target} {ident} in {where}",
    )


def trigger_run(settings: ClientSettings, job_id: int, options: TriggerRunOptions) -> ApiCall:
    return _new_run(settings, "job", job_id, "run", "a run of", options.to_api())


def rerun_job(settings: ClientSettings, job_id: int) -> ApiCall:
    return _new_run(settings, "job", job_id, "rerun", "a rerun of", {})


def retry_run(settings: ClientSettings, run_id: int) -> ApiCall:
    return _new_run(settings, "run", run_id, "retry", "a retry of", {})


def get_run(settings: ClientSettings, run_id: int, include_steps: bool) -> ApiCall:
    account, where = _in_account(settings)
    run = _positive("run_id", run_id)
    related = "trigger,run_steps" if include_steps else "trigger"
    return ApiCall("GET", v2(account, f"runs/{run}/"), f"run {run} in {where}", {"include_related": related})


def list_runs(
    settings: ClientSettings,
    job_id: int | None,
    status: RunStatus | int | list[RunStatus | int] | None,
    order_by: str,
    include_related: Sequence[str] = (),
) -> ApiCall:
    account, where = _in_account(settings)
    if order_by.lstrip("-") not in RUN_ORDER_FIELDS:
        raise DbtCloudConfigError(
            f"order_by must be one of {sorted(RUN_ORDER_FIELDS)}, optionally prefixed with '-' "
            f"for descending order, got {order_by!r}"
        )
    related = ",".join(dict.fromkeys(["trigger", *include_related]))
    params: dict[str, Any] = {"order_by": order_by, "include_related": related}
    params.update(status_params(status))
    what = f"runs in {where}"
    if job_id is not None:
        params["job_definition_id"] = _positive("job_id", job_id)
        what = f"runs of job {job_id} in {where}"
    return ApiCall("GET", v2(account, "runs/"), what, params, missing=where)


def cancel_run(settings: ClientSettings, run_id: int) -> ApiCall:
    account, where = _in_account(settings)
    run = _positive("run_id", run_id)
    return ApiCall("POST", v2(account, f"runs/{run}/cancel/"), f"run {run} in {where}", body={})


def _step_params(step: int | None) -> dict[str, int]:
    return {} if step is None else {"step": _positive("step", step)}


def list_artifacts(settings: ClientSettings, run_id: int, step: int | None) -> ApiCall:
    account, where = _in_account(settings)
    run = _positive("run_id", run_id)
    return ApiCall(
        "GET", v2(account, f"runs/{run}/artifacts/"), f"artifacts of run {run} in {where}", _step_params(step)
    )


def get_artifact(settings: ClientSettings, run_id: int, path: str, step: int | None) -> ApiCall:
    account, where = _in_account(settings)
    run = _positive("run_id", run_id)
    clean = str(path).strip().lstrip("/")
    if not clean or ".." in clean.split("/"):
        raise DbtCloudConfigError(
            f"artifact path must be relative to the run's target dir, e.g. 'manifest.json', got {path!r}"
        )
    step_text = f" (step {step})" if step is not None else ""
    return ApiCall(
        "GET",
        v2(account, f"runs/{run}/artifacts/{quote(clean)}"),
        f"artifact {clean!r} of run {run}{step_text} in {where}",
        _step_params(step),
        expect_json=False,
    )


def artifact_paths(data: Any, run_id: int) -> list[str]:
    """The answer of :func:`list_artifacts` (its ``data``), checked to be a list of paths."""
    if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
        raise DbtCloudResponseError(
            f"dbt Cloud answered the artifact list of run {run_id} with {str(data)[:120]!r}"
        )
    return list(data)
