"""What one dbt task fetches from and writes to object storage, as local paths for the runner.

The runner (:mod:`airflow_dbt_provider.core`) only knows local directories and imports no Airflow;
this is where the operators' URLs become those directories. :func:`task_storage` wraps a task's
run: it fetches a ``project_dir`` URL (:mod:`~airflow_dbt_provider.object_storage.projects`),
swaps an ``artifacts_dir`` URL for a local staging directory uploaded when the block ends however
it ends (:mod:`~airflow_dbt_provider.object_storage.artifacts`), and opens the shared parse cache
when ``[dbt_provider] parse_cache_url`` is set
(:mod:`~airflow_dbt_provider.object_storage.parse_cache`). Local paths pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from airflow_dbt_provider.core.parse_cache import RemoteParseCache, default_cache_dir
from airflow_dbt_provider.logs import Logger
from airflow_dbt_provider.object_storage.artifacts import ArtifactsUpload
from airflow_dbt_provider.object_storage.locations import is_url
from airflow_dbt_provider.object_storage.parse_cache import configured_parse_cache
from airflow_dbt_provider.object_storage.projects import fetch_project


@dataclass(frozen=True)
class TaskStorage:
    """The local paths a task's runner uses, and the shared parse cache (if any)."""

    project_dir: str
    artifacts_dir: str | None
    remote_parse_cache: RemoteParseCache | None = None


@contextlib.contextmanager
def task_storage(
    *, project_dir: str, artifacts_dir: str | None, log: Logger, shared_parse_cache: bool = True
) -> Iterator[TaskStorage]:
    """Local paths for ``project_dir``/``artifacts_dir`` (URLs or paths) while the block runs.

    The artifacts URL is checked first, so a wrong one fails before anything is downloaded; the
    upload happens on the way out, after success, failure, a timeout or a kill.

    :param shared_parse_cache: open ``[dbt_provider] parse_cache_url`` (off when the task has
        ``parse_cache=False`` or runs dbt in a child process, which has no parse cache).
    """
    upload = ArtifactsUpload(artifacts_dir, log) if artifacts_dir and is_url(artifacts_dir) else None
    try:
        local_project = (
            str(fetch_project(project_dir, default_cache_dir(), log)) if is_url(project_dir) else project_dir
        )
        yield TaskStorage(
            project_dir=local_project,
            artifacts_dir=str(upload.local) if upload is not None else artifacts_dir,
            remote_parse_cache=configured_parse_cache(log) if shared_parse_cache else None,
        )
    finally:
        if upload is not None:
            upload.finish()
