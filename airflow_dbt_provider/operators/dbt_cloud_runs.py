"""Operators for dbt Cloud runs and jobs: fetch a run's artifacts, list jobs and runs, cancel a run.

They work on runs that are already there (started by :class:`DbtCloudRunJobOperator`, another
DAG or a person); parameter names, return values and class names are the official provider's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_dbt_provider.cloud import DbtCloudClient, RunStatus
from airflow_dbt_provider.cloud.coerce import is_deferred, to_int, to_optional_int
from airflow_dbt_provider.cloud.reports import run_to_dict
from airflow_dbt_provider.dbt_cloud_base import DbtCloudBaseOperator, DbtCloudRunError

if TYPE_CHECKING:
    from airflow.sdk import Context


class DbtCloudGetRunArtifactOperator(DbtCloudBaseOperator):
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
        *DbtCloudBaseOperator.template_fields,
        "run_id",
        "path",
        "step",
        "output_file_name",
        "output_dir",
    )

    def __init__(
        self,
        *,
        run_id: int | str,
        path: str | list[str],
        step: int | str | None = None,
        output_file_name: str | None = None,
        output_dir: str | None = None,
        return_json: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.path = path
        self.step = step
        self.output_file_name = output_file_name
        self.output_dir = output_dir
        self.return_json = return_json

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
        with self.new_client() as client:
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


class DbtCloudListJobsOperator(DbtCloudBaseOperator):
    """List the account's jobs (optionally of one project/environment); returns their ids.

    :param order_by: ``id``, ``name``, ``created_at`` or ``updated_at``; prefix ``-`` for descending.
    :param include_related: Accepted for compatibility with the official provider and ignored, with
        a warning: this operator returns job ids, which relations do not change.
    """

    template_fields: Sequence[str] = (*DbtCloudBaseOperator.template_fields, "project_id", "environment_id")
    _ORDER_FIELDS = ("id", "name", "created_at", "updated_at")

    def __init__(
        self,
        *,
        project_id: int | str | None = None,
        environment_id: int | str | None = None,
        order_by: str | None = None,
        include_related: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.include_related = include_related
        if include_related:
            self.log.warning(
                "%s: include_related is ignored: DbtCloudListJobsOperator returns job ids", self.task_id
            )
        if order_by and order_by.lstrip("-") not in self._ORDER_FIELDS:
            raise ValueError(
                f"{self.task_id}: order_by must be one of {', '.join(self._ORDER_FIELDS)} "
                f"(prefix '-' for descending), got {order_by!r}"
            )
        self.project_id = project_id
        self.environment_id = environment_id
        self.order_by = order_by

    def execute(self, context: Context) -> list[int]:
        with self.new_client() as client:
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


class DbtCloudListRunsOperator(DbtCloudBaseOperator):
    """List runs of the account or one job, newest first; returns them as dicts (or the latest only).

    :param status_filter: A run status code or codes (1 queued, 2 starting, 3 running, 10 success,
        20 error, 30 cancelled).
    :param limit: At most this many runs (default 100; the API is paged).
    :param include_related: Relations to add to each returned run, as the official provider does
        (``["job", "environment"]``; also ``trigger``, ``repository``, ``run_steps``).
    """

    template_fields: Sequence[str] = (
        *DbtCloudBaseOperator.template_fields,
        "job_id",
        "order_by",
        "include_related",
    )

    def __init__(
        self,
        *,
        job_id: int | str | None = None,
        order_by: str | None = None,
        status_filter: int | list[int] | None = None,
        latest_only: bool = False,
        limit: int | None = 100,
        include_related: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.order_by = order_by
        self.status_filter = status_filter
        self.latest_only = latest_only
        self.limit = limit
        self.include_related = include_related
        if not is_deferred(include_related):
            self._related()  # a bad value fails the DAG import, not a scheduled run

    def _related(self) -> list[str]:
        """``include_related`` as a list of relation names (a rendered ``"job,environment"`` too)."""
        value = self.include_related
        names = value.split(",") if isinstance(value, str) else value
        if names is None:
            return []
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(
                f"{self.task_id}: include_related must be a list of relation names such as "
                f'["job", "environment"], got {value!r}'
            )
        return [n.strip() for n in names]

    def execute(self, context: Context) -> list[dict[str, Any]] | dict[str, Any] | None:
        status: list[RunStatus | int] | None = None
        if self.status_filter is not None:
            codes = [self.status_filter] if isinstance(self.status_filter, int) else list(self.status_filter)
            status = [RunStatus.parse(c) for c in codes]
        related = self._related()
        with self.new_client() as client:
            runs = client.list_runs(
                job_id=to_optional_int("job_id", self.job_id),
                status=status,
                order_by=self.order_by or "-id",
                limit=1 if self.latest_only else self.limit,
                include_related=related,
            )
            result = [run_to_dict(r, client.run_url(r), related) for r in runs]
        self.log.info("found %d dbt Cloud run(s)", len(result))
        if self.latest_only:
            return result[0] if result else None
        return result


class DbtCloudCancelRunOperator(DbtCloudBaseOperator):
    """Cancel a run and (by default) wait until dbt Cloud reports it ended; returns its final status.

    A run that already ended is left as it is (cancelling is idempotent).
    """

    template_fields: Sequence[str] = (*DbtCloudBaseOperator.template_fields, "run_id")

    def __init__(
        self,
        *,
        run_id: int | str,
        wait_for_termination: bool = True,
        timeout: float = 300,
        check_interval: float = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.wait_for_termination = wait_for_termination
        self.timeout = float(timeout)
        self.check_interval = float(check_interval)

    def execute(self, context: Context) -> str:
        run_id = to_int("run_id", self.run_id)
        with self.new_client() as client:
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
