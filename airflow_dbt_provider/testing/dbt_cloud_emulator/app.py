"""The emulator's HTTP application: dbt Cloud's Administrative API plus the ``/_emulator/`` controls.

Every request passes, in order: the control surface (``/_emulator/...``, no auth, never faulted or
logged), fault injection, authentication (``Authorization: Token <t>`` or ``Bearer <t>``), routing,
and the handler, which runs under the state lock. API requests are recorded in the request log with
the status they got (0 when a ``reset`` fault dropped the connection).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from airflow_dbt_provider.testing.dbt_cloud_emulator.clock import SpeedError
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import JobSpec, RunScript, default_steps
from airflow_dbt_provider.testing.dbt_cloud_emulator.faults import FaultBook, FaultError
from airflow_dbt_provider.testing.dbt_cloud_emulator.httpserver import Request, Response
from airflow_dbt_provider.testing.dbt_cloud_emulator.render import Renderer, status_block
from airflow_dbt_provider.testing.dbt_cloud_emulator.state import ERROR, Job, Run, State, progress
from airflow_dbt_provider.testing.dbt_cloud_emulator.validation import (
    BadRequest,
    check_job,
    check_trigger,
    datetime_range_param,
    int_list_param,
    int_param,
    json_body,
    page_params,
)

REQUEST_LOG_LIMIT = 100_000
log = logging.getLogger(__name__)


_FRONT_PAGE = (
    b"<!doctype html><title>dbt Cloud emulator</title>"
    b"<p>dbt Cloud emulator: the API is under /api/v2/ and /api/v3/ (see docs/emulator.md).</p>\n"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it; ``status`` 0 means the connection was reset."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    time: float
    status: int


class HttpError(Exception):
    def __init__(self, status: int, user_message: str, developer_message: str = "") -> None:
        super().__init__(developer_message or user_message)
        self.status = status
        self.user_message = user_message
        self.developer_message = developer_message

    @classmethod
    def not_found(cls, developer_message: str) -> HttpError:
        """dbt Cloud's 404: one user message for every missing resource, the detail for developers."""
        return cls(404, "The requested resource was not found.", developer_message)


@dataclass
class Ctx:
    """What a handler gets: the request, path parameters, and the caller's visible accounts."""

    request: Request
    params: dict[str, str]
    accounts: frozenset[int] | None

    @property
    def query(self) -> dict[str, list[str]]:
        return self.request.query

    def include(self) -> set[str]:
        raw = ",".join(self.query.get("include_related", []))
        return {part.strip() for part in raw.strip("[]").replace("'", "").replace('"', "").split(",") if part}


Route = tuple[str, re.Pattern[str], Callable[[Ctx], Response]]


def _pattern(template: str) -> re.Pattern[str]:
    """``/api/v2/accounts/{account_id}/`` -> a regex. ``{path}`` spans slashes (artifact paths such as
    ``run/jaffle_shop/seeds/raw.csv``); the trailing slash is optional, as clients differ."""

    def group(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"(?P<{name}>.+)" if name == "path" else f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\{(\w+)\}", group, template.rstrip("/")) + "/?$")


def _json(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode())


class App:
    """Callable by :class:`~.httpserver.HttpServer`: one instance per emulator."""

    def __init__(self, state: State, renderer: Renderer, faults: FaultBook, lenient: bool) -> None:
        self.state = state
        self.render = renderer
        self.faults = faults
        self.lenient = lenient
        self.log: collections.deque[RecordedRequest] = collections.deque(maxlen=REQUEST_LOG_LIMIT)
        self.routes: list[Route] = [
            (m, _pattern(t), h)
            for m, t, h in [
                ("GET", "/api/v2/accounts/", self.list_accounts),
                ("GET", "/api/v3/accounts/", self.list_accounts),
                ("GET", "/api/v2/accounts/{account_id}/", self.get_account),
                ("GET", "/api/v2/accounts/{account_id}/jobs/", self.list_jobs),
                ("POST", "/api/v2/accounts/{account_id}/jobs/", self.create_job),
                ("GET", "/api/v2/accounts/{account_id}/jobs/{job_id}/", self.get_job),
                ("DELETE", "/api/v2/accounts/{account_id}/jobs/{job_id}/", self.delete_job),
                ("POST", "/api/v2/accounts/{account_id}/jobs/{job_id}/run/", self.trigger_run),
                ("POST", "/api/v2/accounts/{account_id}/jobs/{job_id}/rerun/", self.rerun_job),
                ("GET", "/api/v2/accounts/{account_id}/jobs/{job_id}/artifacts/{path}", self.job_artifact),
                ("GET", "/api/v2/accounts/{account_id}/runs/", self.list_runs),
                ("GET", "/api/v2/accounts/{account_id}/runs/{run_id}/", self.get_run),
                ("POST", "/api/v2/accounts/{account_id}/runs/{run_id}/cancel/", self.cancel_run),
                ("POST", "/api/v2/accounts/{account_id}/runs/{run_id}/retry/", self.retry_run),
                ("GET", "/api/v2/accounts/{account_id}/runs/{run_id}/retry/", self.failure_details),
                ("GET", "/api/v2/accounts/{account_id}/runs/{run_id}/artifacts/", self.list_artifacts),
                ("GET", "/api/v2/accounts/{account_id}/runs/{run_id}/artifacts/{path}", self.get_artifact),
                ("GET", "/api/v3/accounts/{account_id}/projects/", self.list_projects),
                ("GET", "/api/v3/accounts/{account_id}/projects/{project_id}/", self.get_project),
                (
                    "GET",
                    "/api/v3/accounts/{account_id}/projects/{project_id}/environments/",
                    self.list_environments,
                ),
                (
                    "GET",
                    "/api/v3/accounts/{account_id}/projects/{project_id}/environments/{environment_id}/",
                    self.get_environment,
                ),
            ]
        ]

    # ---------------------------------------------------------------------------------- dispatch
    async def __call__(self, request: Request) -> Response:
        if request.path.startswith("/_emulator/"):
            return self.control(request)
        received = time.time()
        try:
            response = await self._api(request)
        except Exception:  # an emulator bug: answer 500 and say so, rather than drop the connection
            log.exception("dbt Cloud emulator failed on %s %s", request.method, request.path)
            response = _error_body(500, "Internal server error.", "dbt Cloud emulator bug; see its stderr")
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query,
                body=_logged_body(request.body),
                time=received,
                status=0 if response.reset else response.status,
            )
        )
        return response

    async def _api(self, request: Request) -> Response:
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            if fault.kind == "reset":
                return Response(0, reset=True)
            if fault.kind == "malformed":
                return Response(200, b'{"status": {"code": 200, "is_success": true, "user_message": "Succ')
            if fault.kind == "status":
                headers = [] if fault.retry_after is None else [("retry-after", _seconds(fault.retry_after))]
                error = _error_body(
                    fault.status, _REASONS.get(fault.status, "Injected fault."), "injected fault"
                )
                return Response(fault.status, error.body, headers=headers)
            await asyncio.sleep(fault.delay)  # "slow": then answer normally
        try:
            return self._dispatch(request)
        except BadRequest as exc:
            body = {"status": status_block(400, "The request was invalid.", str(exc)), "data": exc.errors}
            return _json(body, 400)
        except HttpError as exc:
            return _error_body(exc.status, exc.user_message, exc.developer_message)

    def _dispatch(self, request: Request) -> Response:
        if request.path == "/" and request.method in ("GET", "HEAD"):
            # dbt Cloud's web front door answers 200 to anyone; the official provider's Test button
            # (DbtCloudHook.test_connection) and list_accounts() request exactly this page.
            return Response(200, _FRONT_PAGE, "text/html; charset=utf-8")
        accounts = self._authenticate(request)
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            with self.state.lock:
                return handler(Ctx(request, match.groupdict(), accounts))
        if allowed:
            raise HttpError(
                405, f"Method {request.method} not allowed; use {' or '.join(sorted(set(allowed)))}."
            )
        raise HttpError.not_found(f"No API endpoint at {request.path}")

    def _authenticate(self, request: Request) -> frozenset[int] | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            raise HttpError(401, "Invalid token.", "Send 'Authorization: Token <api token>' (or Bearer).")
        try:
            return self.state.token_accounts(token.strip())
        except KeyError:
            raise HttpError(401, "Invalid token.", "The API token is not valid.") from None

    # ------------------------------------------------------------------------------ path lookups
    def _int(self, ctx: Ctx, name: str) -> int:
        try:
            return int(ctx.params[name])
        except ValueError:
            raise HttpError.not_found(f"{name} must be an integer") from None

    def _account(self, ctx: Ctx) -> int:
        account_id = self._int(ctx, "account_id")
        if account_id not in self.state.accounts:
            raise HttpError.not_found(f"No account {account_id}.")
        if ctx.accounts is not None and account_id not in ctx.accounts:
            raise HttpError(
                403, "You do not have permission to access this account.", f"account {account_id}"
            )
        return account_id

    def _job(self, ctx: Ctx) -> Job:
        account_id = self._account(ctx)
        job_id = self._int(ctx, "job_id")
        job = self.state.jobs.get(job_id)
        if job is None or job.account_id != account_id or job.state != 1:
            raise HttpError.not_found(f"No job {job_id} in account {account_id}.")
        return job

    def _run(self, ctx: Ctx) -> Run:
        account_id = self._account(ctx)
        run_id = self._int(ctx, "run_id")
        run = self.state.runs.get(run_id)
        if run is None or run.job.account_id != account_id:
            raise HttpError.not_found(f"No run {run_id} in account {account_id}.")
        return run

    def _project(self, ctx: Ctx) -> tuple[Any, int]:
        account_id = self._account(ctx)
        project_id = self._int(ctx, "project_id")
        found = self.state.projects.get(project_id)
        if found is None or found[1] != account_id:
            raise HttpError.not_found(f"No project {project_id} in account {account_id}.")
        return found[0], account_id

    # ---------------------------------------------------------------------------------- envelopes
    def _ok(self, data: Any, status: int = 200) -> Response:
        return _json(
            {"status": status_block(status, "Success!" if status != 201 else "Created!"), "data": data},
            status,
        )

    def _page(
        self,
        ctx: Ctx,
        items: list[Any],
        filters: dict[str, Any],
        order_fields: dict[str, Callable[[Any], Any]],
        default_order: str,
        render: Callable[[Any], dict[str, Any]],
    ) -> Response:
        limit, offset = page_params(ctx.query)
        order_raw = ctx.query.get("order_by", [""])[-1]
        order = order_raw or default_order
        field = order.lstrip("-")
        if field not in order_fields:
            raise BadRequest(f"order_by must be one of {sorted(order_fields)} (prefix - to reverse).",
                             {"order_by": [f"Cannot order by {order!r}."]})  # fmt: skip
        key = order_fields[field]

        def sort_key(item: Any) -> tuple[bool, Any]:
            value = key(item)  # None (e.g. finished_at of a running run) sorts last
            return (value is None, 0 if value is None else value)

        items = sorted(items, key=sort_key, reverse=order.startswith("-"))
        page = items[offset : offset + limit]
        applied = {k: v for k, v in filters.items() if v is not None}
        extra = {
            "filters": {**applied, "limit": limit, "offset": offset},
            "order_by": order_raw if (order_raw or not self.lenient) else None,
            "pagination": {"count": len(page), "total_count": len(items)},
        }
        if not order_raw and not self.lenient:
            extra["order_by"] = default_order
        return _json({"status": status_block(), "data": [render(i) for i in page], "extra": extra})

    # ------------------------------------------------------------------------------------ accounts
    def list_accounts(self, ctx: Ctx) -> Response:
        accounts = [a for a in self.state.accounts.values() if ctx.accounts is None or a.id in ctx.accounts]
        return self._page(ctx, accounts, {}, {"id": lambda a: a.id, "name": lambda a: a.name}, "id",
                          self.render.account)  # fmt: skip

    def get_account(self, ctx: Ctx) -> Response:
        return self._ok(self.render.account(self.state.accounts[self._account(ctx)]))

    # -------------------------------------------------------------------------------------- jobs
    def list_jobs(self, ctx: Ctx) -> Response:
        account_id = self._account(ctx)
        q = ctx.query
        filters: dict[str, Any] = {
            "account_id": account_id,
            "project_id": int_param(q, "project_id"),
            "project_id__in": int_list_param(q, "project_id__in"),
            "environment_id": int_param(q, "environment_id"),
            "pk": int_param(q, "pk"),
            "name__icontains": q.get("name__icontains", [None])[-1],
            "state": q.get("state", ["active"])[-1],
        }
        states = {"active": {1}, "1": {1}, "deleted": {2}, "2": {2}, "all": {1, 2}}.get(str(filters["state"]))
        if states is None:
            raise BadRequest(
                'state must be "active", "deleted", "all", 1 or 2.', {"state": ["Invalid choice."]}
            )
        jobs = [
            j
            for j in self.state.jobs.values()
            if j.account_id == account_id
            and j.state in states
            and filters["project_id"] in (None, j.project_id)
            and (filters["project_id__in"] is None or j.project_id in filters["project_id__in"])
            and filters["environment_id"] in (None, j.environment_id)
            and filters["pk"] in (None, j.spec.id)
            and (
                filters["name__icontains"] is None
                or filters["name__icontains"].lower() in j.spec.name.lower()
            )
        ]
        include = ctx.include()
        orders: dict[str, Callable[[Any], Any]] = {
            "id": lambda j: j.spec.id,
            "name": lambda j: j.spec.name,
            "created_at": lambda j: j.created_at,
            "updated_at": lambda j: j.updated_at,
        }
        return self._page(ctx, jobs, filters, orders, "id", lambda j: self.render.job(j, include))

    def get_job(self, ctx: Ctx) -> Response:
        return self._ok(self.render.job(self._job(ctx), ctx.include()))

    def create_job(self, ctx: Ctx) -> Response:
        account_id = self._account(ctx)
        body = json_body(ctx.request.body, required=True)
        check_job(body, strict=not self.lenient)
        errors: dict[str, list[str]] = {}
        if body["account_id"] != account_id:
            errors["account_id"] = [f"Must match the account in the URL ({account_id})."]
        env = self.state.environments.get(body["environment_id"])
        if env is None or env[2] != account_id:
            errors["environment_id"] = [f"No environment {body['environment_id']} in account {account_id}."]
        elif env[1] != body["project_id"]:
            errors["project_id"] = [
                f"Environment {env[0].id} belongs to project {env[1]}, not {body['project_id']}."
            ]
        if errors:
            raise BadRequest("The job definition is invalid.", errors)
        steps = list(body.get("execute_steps") or ["dbt build"])
        settings = body.get("settings") or {}
        spec = JobSpec(
            id=0,
            name=body["name"],
            execute_steps=steps,
            runs=[RunScript(steps=default_steps(steps))],
            description=body.get("description") or "",
            generate_docs=bool(body.get("generate_docs", False)),
            threads=int(settings.get("threads", 4)),
            target_name=str(settings.get("target_name", "default")),
            timeout_seconds=int((body.get("execution") or {}).get("timeout_seconds", 0)),
            job_type=body.get("job_type") or "other",
            dbt_version=body.get("dbt_version"),
        )
        job = self.state.create_job(account_id, spec, body)
        if self.lenient:  # live answers 201 Created
            return self._ok(self.render.job(job), 201)
        return self._ok(self.render.job(job))

    def delete_job(self, ctx: Ctx) -> Response:
        job = self._job(ctx)
        job.state = 2
        job.updated_at = time.time()
        if self.lenient:  # live answers 200 with the soft-deleted job (state 2)
            return self._ok(self.render.job(job))
        return Response(204)

    def trigger_run(self, ctx: Ctx) -> Response:
        job = self._job(ctx)
        overrides = check_trigger(json_body(ctx.request.body, required=True), strict=not self.lenient)
        run = self.state.start_run(job, overrides.pop("cause"), "api", overrides)
        return self._ok(self.render.run(run, {"job", "trigger"} if not self.lenient else set()))

    def rerun_job(self, ctx: Ctx) -> Response:
        job = self._job(ctx)
        latest = self.state.latest_run(job)
        failed = latest is not None and progress(latest, self.state.clock.now()).status == ERROR
        if failed and latest is not None:
            run = self.state.start_run(
                job, f"Retry of run {latest.id}", "rerun", dict(latest.overrides), latest.id
            )
        else:
            run = self.state.start_run(job, "Rerun from the API", "api", {})
        return self._ok(self.render.run(run))

    # -------------------------------------------------------------------------------------- runs
    def list_runs(self, ctx: Ctx) -> Response:
        account_id = self._account(ctx)
        q = ctx.query
        filters: dict[str, Any] = {
            "account_id": account_id,
            "job_definition_id": int_param(q, "job_definition_id"),
            "project_id": int_param(q, "project_id"),
            "project_id__in": int_list_param(q, "project_id__in"),
            "environment_id": int_param(q, "environment_id"),
            "status": int_param(q, "status"),
            "status__in": int_list_param(q, "status__in"),
            "pk": int_param(q, "pk"),
            "pk__in": int_list_param(q, "pk__in"),
            "id__gt": int_param(q, "id__gt"),
            "created_at__range": q.get("created_at__range"),  # echoed as given
        }
        created_range = datetime_range_param(q, "created_at__range")

        def created_at(run: Run) -> float:  # at the microseconds the API shows, as clients compare
            wall = self.state.clock.wall_time(run.created)
            return dt.datetime.fromtimestamp(wall, dt.timezone.utc).timestamp()

        now = self.state.clock.now()
        runs = []
        for run in self.state.runs.values():
            job = run.job
            if job.account_id != account_id:
                continue
            status = progress(run, now).status
            checks = [
                filters["job_definition_id"] in (None, job.spec.id),
                filters["project_id"] in (None, job.project_id),
                filters["project_id__in"] is None or job.project_id in filters["project_id__in"],
                filters["environment_id"] in (None, job.environment_id),
                filters["status"] in (None, status),
                filters["status__in"] is None or status in filters["status__in"],
                filters["pk"] in (None, run.id),
                filters["pk__in"] is None or run.id in filters["pk__in"],
                filters["id__gt"] is None or run.id > filters["id__gt"],
                created_range is None or created_range[0] <= created_at(run) <= created_range[1],
            ]
            if all(checks):
                runs.append(run)
        include = ctx.include()

        def finished(run: Run) -> float | None:
            return progress(run, now).finished

        orders = {"id": lambda r: r.id, "created_at": lambda r: r.created, "finished_at": finished}
        return self._page(ctx, runs, filters, orders, "id", lambda r: self.render.run(r, include, now))

    def get_run(self, ctx: Ctx) -> Response:
        return self._ok(self.render.run(self._run(ctx), ctx.include()))

    def cancel_run(self, ctx: Ctx) -> Response:
        run = self._run(ctx)
        self.state.cancel(run)
        return self._ok(self.render.run(run))

    def retry_run(self, ctx: Ctx) -> Response:
        run = self._run(ctx)
        status = progress(run, self.state.clock.now()).status
        if status != ERROR:
            raise BadRequest(
                "Only a failed run can be retried (RETRY_NOT_FAILED_RUN).",
                {"non_field_errors": [f"Run {run.id} has status {status}; retry needs status 20 (Error)."]},
            )
        new = self.state.start_run(run.job, f"Retry of run {run.id}", "rerun", dict(run.overrides), run.id)
        return self._ok(self.render.run(new))

    def failure_details(self, ctx: Ctx) -> Response:
        run = self._run(ctx)
        prog = progress(run, self.state.clock.now())
        failed = [s for s in prog.steps if s.status == ERROR]
        data: dict[str, Any] = {}
        if failed:
            ran = {s.index for s in prog.steps}
            data["failed_step"] = failed[0].script.name
            data["skipped_steps"] = [s.name for i, s in enumerate(run.script.steps, 1) if i not in ran]
        return self._ok(data)

    # --------------------------------------------------------------------------------- artifacts
    def _artifacts(self, run: Run) -> dict[int, dict[str, Any]]:
        """Artifacts by step index, available once the run is complete (as in dbt Cloud)."""
        prog = progress(run, self.state.clock.now())
        if not prog.is_complete:
            return {}
        return {s.index: dict(s.script.artifacts) for s in prog.steps if s.finished is not None}

    def list_artifacts(self, ctx: Ctx) -> Response:
        by_step = self._artifacts(self._run(ctx))
        return self._ok(sorted({name for names in by_step.values() for name in names}))

    def _serve_artifact(self, run: Run, ctx: Ctx) -> Response:
        name = ctx.params["path"]
        by_step = self._artifacts(run)
        step = int_param(ctx.query, "step")
        if not by_step:
            raise HttpError.not_found(f"Run {run.id} has no artifacts (yet).")
        index = step if step is not None else max(by_step)
        source = by_step.get(index, {}).get(name)
        if source is None:
            raise HttpError.not_found(f"No artifact {name!r} for step {index} of run {run.id}.")
        body, content_type = source.load(name)
        return Response(200, body, content_type)

    def get_artifact(self, ctx: Ctx) -> Response:
        return self._serve_artifact(self._run(ctx), ctx)

    def job_artifact(self, ctx: Ctx) -> Response:
        job = self._job(ctx)
        now = self.state.clock.now()
        done = [r for r in self.state.runs.values() if r.job is job and progress(r, now).is_complete]
        if not done:
            raise HttpError.not_found(f"Job {job.spec.id} has no completed run.")
        return self._serve_artifact(max(done, key=lambda r: r.id), ctx)

    # ---------------------------------------------------------------------- v3 projects and envs
    def list_projects(self, ctx: Ctx) -> Response:
        account_id = self._account(ctx)
        q = ctx.query
        filters = {"account_id": account_id, "pk": int_param(q, "pk"),
                   "name__icontains": q.get("name__icontains", [None])[-1]}  # fmt: skip
        projects = [
            p
            for p, owner in self.state.projects.values()
            if owner == account_id
            and filters["pk"] in (None, p.id)
            and (
                filters["name__icontains"] is None
                or str(filters["name__icontains"]).lower() in p.name.lower()
            )
        ]
        orders = {"id": lambda p: p.id, "name": lambda p: p.name}
        return self._page(ctx, projects, filters, orders, "id", lambda p: self.render.project(p, account_id))

    def get_project(self, ctx: Ctx) -> Response:
        project, account_id = self._project(ctx)
        return self._ok(self.render.project(project, account_id))

    def list_environments(self, ctx: Ctx) -> Response:
        project, account_id = self._project(ctx)
        q = ctx.query
        filters = {
            "account_id": account_id,
            "project_id": project.id,
            "name": q.get("name", [None])[-1],
            "name__icontains": q.get("name__icontains", [None])[-1],
            "deployment_type": q.get("deployment_type", [None])[-1],
            "type": q.get("type", [None])[-1],
            "pk": int_param(q, "pk"),
        }
        envs = [
            e
            for e in project.environments
            if filters["name"] in (None, e.name)
            and (
                filters["name__icontains"] is None
                or str(filters["name__icontains"]).lower() in e.name.lower()
            )
            and filters["deployment_type"] in (None, e.deployment_type)
            and filters["type"] in (None, e.type)
            and filters["pk"] in (None, e.id)
        ]
        orders = {"id": lambda e: e.id, "name": lambda e: e.name}
        return self._page(ctx, envs, filters, orders, "id",
                          lambda e: self.render.environment(e, project.id, account_id))  # fmt: skip

    def get_environment(self, ctx: Ctx) -> Response:
        project, account_id = self._project(ctx)
        env_id = self._int(ctx, "environment_id")
        for env in project.environments:
            if env.id == env_id:
                return self._ok(self.render.environment(env, project.id, account_id))
        raise HttpError.not_found(f"No environment {env_id} in project {project.id}.")

    # ------------------------------------------------------------------------------ control API
    def control(self, request: Request) -> Response:
        """``/_emulator/``: faults, request log, reset, speed, world — for tests, no auth."""
        route = (request.method, request.path.rstrip("/"))
        try:
            if route == ("POST", "/_emulator/faults"):
                fault = self.faults.add(**_control_body(request))
                return _json({"fault": fault.as_dict()})
            if route == ("GET", "/_emulator/faults"):
                return _json({"faults": [f.as_dict() for f in self.faults.active()]})
            if route == ("DELETE", "/_emulator/faults"):
                self.faults.clear()
                return _json({"faults": []})
            if route == ("GET", "/_emulator/requests"):
                return _json({"requests": [asdict(r) for r in list(self.log)]})
            if route == ("DELETE", "/_emulator/requests"):
                self.log.clear()
                return _json({"requests": []})
            if route == ("POST", "/_emulator/reset"):
                self.reset()
                return _json({"reset": True})
            if route == ("POST", "/_emulator/speed"):
                self.state.clock.set_speed(_control_body(request).get("speed"))
                return _json({"speed": self.state.clock.speed})
            if route == ("GET", "/_emulator/speed"):
                return _json({"speed": self.state.clock.speed})
            if route == ("GET", "/_emulator/world"):
                return _json(self.state.world().as_dict())
        except (FaultError, SpeedError, ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(
            {"error": f"unknown control endpoint {request.method} {request.path}; see docs/emulator.md"}, 404
        )

    def reset(self) -> None:
        """Back to the seeded world: no runs, no created jobs, empty request log, no faults."""
        self.faults.clear()
        self.log.clear()
        self.state.reset()


_REASONS = {
    429: "Too many requests.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable.",
    504: "Gateway timeout.",
}


def _error_body(status: int, user_message: str, developer_message: str = "") -> Response:
    return _json({"status": status_block(status, user_message, developer_message), "data": None}, status)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")


def _control_body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"control request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("control request body must be a JSON object")
    return data
