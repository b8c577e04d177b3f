"""Synchronous dbt Cloud client on one pooled ``requests.Session``.

TLS and proxy settings come resolved from :func:`resolve_transport` and are passed with every
request, with the session's own environment lookup off (``trust_env=False``): requests would
otherwise let ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` and pick its own proxies.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from airflow_dbt_provider.cloud import _endpoints as ep
from airflow_dbt_provider.cloud._core import (
    ApiCall,
    Pager,
    RetrySchedule,
    headers,
    parse_json,
    require_account,
    tls_error,
    transport_error,
    unwrap,
)
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError, DbtCloudLookupError
from airflow_dbt_provider.cloud.models import Account, Environment, Job, Project, Run, RunStatus
from airflow_dbt_provider.cloud.options import TriggerRunOptions
from airflow_dbt_provider.cloud.settings import ClientSettings, Transport, resolve_transport

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
#: Fields of a job definition that dbt Cloud computes; an export leaves them out.
JOB_EXPORT_FIELDS = (
    "name",
    "description",
    "project_id",
    "environment_id",
    "dbt_version",
    "execute_steps",
    "execution",
    "generate_docs",
    "run_generate_sources",
    "generate_sources",
    "job_type",
    "lifecycle_webhooks",
    "settings",
    "triggers",
    "schedule",
    "deferring_job_definition_id",
    "deferring_environment_id",
    "run_compare_changes",
    "compare_changes_flags",
    "run_lint",
    "errors_on_lint_failure",
    "cost_optimization_features",
    "triggers_on_draft_pr",
)
#: Values for the fields the Create Job endpoint requires, used when a definition leaves them out.
JOB_DEFAULTS: dict[str, Any] = {
    "state": 1,
    "execution": {"timeout_seconds": 0},
    "generate_docs": False,
    "run_generate_sources": False,
    "lifecycle_webhooks": False,
    "run_compare_changes": False,
    "run_lint": False,
    "errors_on_lint_failure": True,
    "settings": {"threads": 4, "target_name": "default"},
    "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": False},
}


class DbtCloudClient:
    """dbt Cloud Administrative API client (v2 and v3), retrying transient failures."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.transport: Transport = resolve_transport(settings)
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.headers.update(headers(settings))
        proxy = self.transport.proxy
        self._proxies = {"http": proxy, "https": proxy} if proxy else {}

    def __repr__(self) -> str:
        return (
            f"DbtCloudClient(access_url={self.settings.access_url!r}, account_id={self.settings.account_id})"
        )

    def __enter__(self) -> DbtCloudClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --- transport ------------------------------------------------------------------------------

    def _send(self, call: ApiCall, *, stream: bool = False) -> requests.Response:
        """Send with retries; return a 2xx response or raise the matching :class:`DbtCloudError`."""
        schedule = RetrySchedule(call, self.settings, log)
        while True:
            try:
                response = self._session.request(
                    call.method,
                    self.settings.api_base + call.path,
                    params=call.params,
                    json=call.body,
                    timeout=self.settings.timeout,
                    verify=self.transport.verify,
                    proxies=self._proxies,
                    stream=stream,
                )
            except requests.exceptions.SSLError as exc:
                raise tls_error(call, self.settings, exc, self.transport.verify) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                time.sleep(schedule.after_failure(exc, reached_server=not _not_sent(exc)))
                continue
            log.debug("dbt Cloud %s %s -> %d", call.method, call.path, response.status_code)
            if response.ok:
                return response
            body = response.content
            response.close()
            time.sleep(schedule.after_status(response.status_code, body, response.headers.get("Retry-After")))

    def _json(self, call: ApiCall) -> Any:
        response = self._send(call)
        return parse_json(call, response.content)

    def _data(self, call: ApiCall) -> Any:
        return unwrap(call, self._json(call))

    def _all(self, call: ApiCall, limit: int | None = None) -> list[Any]:
        """Every item of a paginated list, page by page (``limit`` ≤ 100 per request)."""
        pager = Pager(call, limit)
        while not pager.done:
            pager.add(self._json(pager.next_call()))
        return pager.items

    # --- accounts, projects, environments -------------------------------------------------------

    def get_account(self, account_id: int | None = None) -> Account:
        return Account.from_api(self._data(ep.get_account(self.settings, account_id)))

    def list_accounts(self) -> list[Account]:
        return [Account.from_api(a) for a in self._all(ep.list_accounts())]

    def list_projects(self, name: str | None = None) -> list[Project]:
        """Projects of the account; ``name`` keeps exact (case-insensitive) matches only."""
        projects = [Project.from_api(p) for p in self._all(ep.list_projects(self.settings, name))]
        return _named(projects, name)

    def get_project(self, project_id: int) -> Project:
        return Project.from_api(self._data(ep.get_project(self.settings, project_id)))

    def get_environment(self, project_id: int, environment_id: int) -> Environment:
        return Environment.from_api(self._data(ep.get_environment(self.settings, project_id, environment_id)))

    def list_environments(self, project_id: int | None = None, name: str | None = None) -> list[Environment]:
        """Environments of a project, or of every project; ``name`` keeps exact matches only."""
        projects = [project_id] if project_id is not None else [p.id for p in self.list_projects()]
        found = [
            Environment.from_api(e)
            for p in projects
            for e in self._all(ep.list_environments(self.settings, p, name))
        ]
        return _named(found, name)

    # --- jobs ------------------------------------------------------------------------------------

    def list_jobs(
        self,
        project_id: int | None = None,
        environment_id: int | None = None,
        name: str | None = None,
        name_contains: str | None = None,
    ) -> list[Job]:
        """Jobs of the account, filtered by project, environment, exact name or name substring."""
        call = ep.list_jobs(self.settings, project_id, environment_id, name or name_contains)
        jobs = [Job.from_api(j) for j in self._all(call)]
        if environment_id is not None:  # some API versions ignore the filter: apply it here too
            jobs = [j for j in jobs if j.environment_id in (None, int(environment_id))]
        return _named(jobs, name)

    def get_job(self, job_id: int) -> Job:
        return Job.from_api(self._data(ep.get_job(self.settings, job_id)))

    def find_job(self, project_name: str, environment_name: str, job_name: str) -> Job:
        """The one job with these names, or :class:`DbtCloudLookupError` listing the candidates."""
        project = _only(
            self.list_projects(project_name),
            "project",
            project_name,
            lambda: self.list_projects(),
            "in the account",
        )
        environment = _only(
            self.list_environments(project.id, environment_name),
            "environment",
            environment_name,
            lambda: self.list_environments(project.id),
            f"in project {project.name!r} ({project.id})",
        )
        jobs = self.list_jobs(project_id=project.id, environment_id=environment.id)
        return _only(
            _named(jobs, job_name),
            "job",
            job_name,
            lambda: jobs,
            f"in project {project.name!r}, environment {environment.name!r} ({environment.id})",
        )

    def create_job(self, definition: dict[str, Any]) -> Job:
        """Create a job; fields the API requires but the definition omits get neutral defaults."""
        body = {**copy.deepcopy(JOB_DEFAULTS), **copy.deepcopy(definition)}
        body.setdefault("account_id", require_account(self.settings))
        missing = [k for k in ("name", "project_id", "environment_id", "execute_steps") if not body.get(k)]
        if missing:
            raise DbtCloudConfigError(
                f"job definition lacks {', '.join(missing)}; these are required to create a job"
            )
        body.pop("id", None)
        return Job.from_api(self._data(ep.create_job(self.settings, body)))

    def delete_job(self, job_id: int) -> None:
        self._send(ep.delete_job(self.settings, job_id)).close()

    def export_job(self, job_id: int) -> dict[str, Any]:
        """A job's definition as plain JSON data, for import_job (as dbt-cloud-cli's job export does).

        Ids, timestamps and computed fields are left out, and so are empty values: the API sends
        ``""`` and ``null`` where its create endpoint requires a non-empty value or nothing.
        """
        raw = self.get_job(job_id).raw
        return {k: copy.deepcopy(raw[k]) for k in JOB_EXPORT_FIELDS if raw.get(k) not in (None, "")}

    def import_job(
        self, definition: dict[str, Any], project_id: int | None = None, environment_id: int | None = None
    ) -> Job:
        """Create a job from an exported definition, optionally into another project/environment."""
        body = {
            k: v for k, v in definition.items() if k not in {"id", "account_id", "created_at", "updated_at"}
        }
        if project_id is not None:
            body["project_id"] = int(project_id)
        if environment_id is not None:
            body["environment_id"] = int(environment_id)
        return self.create_job(body)

    # --- runs ------------------------------------------------------------------------------------

    def trigger_run(self, job_id: int, options: TriggerRunOptions | None = None) -> Run:
        return Run.from_api(self._data(ep.trigger_run(self.settings, job_id, options or TriggerRunOptions())))

    def rerun_job(self, job_id: int) -> Run:
        """Rerun a job from its last failure point (or start it anew if its last run succeeded)."""
        return Run.from_api(self._data(ep.rerun_job(self.settings, job_id)))

    def retry_run(self, run_id: int) -> Run:
        """Retry a failed run from the point of failure (``POST /runs/{id}/retry/``)."""
        return Run.from_api(self._data(ep.retry_run(self.settings, run_id)))

    def get_run(self, run_id: int, include_steps: bool = False) -> Run:
        return Run.from_api(self._data(ep.get_run(self.settings, run_id, include_steps)))

    def list_runs(
        self,
        job_id: int | None = None,
        status: RunStatus | int | list[RunStatus | int] | None = None,
        order_by: str = "-id",
        limit: int | None = None,
        include_related: Sequence[str] = (),
    ) -> list[Run]:
        """Runs of the account or a job, newest first by default; ``limit`` caps the total fetched.

        ``include_related`` asks for relations too (``job``, ``environment``, ``repository``...);
        each run keeps them, as the API sent them, in :attr:`Run.related`.
        """
        call = ep.list_runs(self.settings, job_id, status, order_by, include_related)
        return [Run.from_api(r) for r in self._all(call, limit)]

    def iter_runs(
        self,
        job_id: int | None = None,
        status: RunStatus | int | list[RunStatus | int] | None = None,
        order_by: str = "-id",
    ) -> Iterator[Run]:
        """Runs page by page, each page fetched only when the one before is used up.

        For searches that stop early (the newest run with a given cause, say): a caller that breaks
        out after the first page has made one request, however many runs the job has.
        """
        pager = Pager(ep.list_runs(self.settings, job_id, status, order_by))
        while not pager.done:
            start = len(pager.items)
            pager.add(self._json(pager.next_call()))
            yield from (Run.from_api(r) for r in pager.items[start:])

    def cancel_run(self, run_id: int) -> Run:
        return Run.from_api(self._data(ep.cancel_run(self.settings, run_id)))

    def run_url(self, run: Run) -> str:
        """The dbt Cloud web page of ``run``."""
        return run_web_url(self.settings, run)

    # --- artifacts -------------------------------------------------------------------------------

    def list_artifacts(self, run_id: int, step: int | None = None) -> list[str]:
        data = self._data(ep.list_artifacts(self.settings, run_id, step))
        return ep.artifact_paths(data, run_id)

    def get_artifact(self, run_id: int, path: str, step: int | None = None) -> bytes:
        return self._send(ep.get_artifact(self.settings, run_id, path, step)).content

    def get_artifact_json(self, run_id: int, path: str, step: int | None = None) -> Any:
        call = ep.get_artifact(self.settings, run_id, path, step)
        return parse_json(call, self._send(call).content)

    def download_artifact(self, run_id: int, path: str, dest: Path | str, step: int | None = None) -> Path:
        """Stream an artifact to ``dest`` (a file, or a directory to put it in); returns the file.

        Written to a temporary file beside ``dest`` and renamed, so a failed download never leaves
        a truncated artifact behind.
        """
        call = ep.get_artifact(self.settings, run_id, path, step)
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_file(target) as out, self._send(call, stream=True) as response:
            try:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise transport_error(call, self.settings, exc, 1) from None
        return target


def run_web_url(settings: ClientSettings, run: Run) -> str:
    """A run's web page: the API's ``href`` when it is one, else built from the access URL."""
    if run.href and run.href.startswith(("http://", "https://")) and "/api/" not in run.href:
        return run.href
    account = run.account_id if run.account_id is not None else require_account(settings)
    return settings.web_run_url(account, run.project_id, run.id)


def _not_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached dbt Cloud (so repeating it is always safe)."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError | ssl.SSLError)


def _named(items: list[Any], name: str | None) -> list[Any]:
    if not name:
        return items
    wanted = name.strip().casefold()
    return [i for i in items if (i.name or "").strip().casefold() == wanted]


def _only(matches: list[Any], kind: str, name: str, candidates: Any, where: str) -> Any:
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{m.name!r} (id {m.id})" for m in matches)
        raise DbtCloudLookupError(
            f"{len(matches)} {kind}s named {name!r} {where}: {listed}. Rename one or use its id."
        )
    names = sorted({repr(c.name) for c in candidates()})
    shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
    raise DbtCloudLookupError(f"No {kind} named {name!r} {where}. Available: {shown or 'none'}.")


@contextmanager
def _atomic_file(target: Path) -> Iterator[Any]:
    """A temporary file beside ``target``, renamed onto it once written.

    Created with mode 0666 minus the umask, like any file the worker writes (``mkstemp`` would make
    it 0600, so the artifact would be unreadable to the rest of the pipeline).
    """
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
