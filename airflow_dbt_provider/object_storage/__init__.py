"""dbt projects, artifacts and the partial-parse cache on object storage, for workers sharing no disk.

Through Airflow's own ``ObjectStoragePath`` (fsspec), so every backend a deployment registered
works; the runner (:mod:`airflow_dbt_provider.core`) never sees a URL, only the local paths
:func:`~airflow_dbt_provider.object_storage.task_storage.task_storage` hands it. One module per
job: :mod:`.locations` (URLs, checks, errors), :mod:`.projects` (fetch once per version),
:mod:`.artifacts` (upload at task end; ``retry_from_failure``'s state), :mod:`.parse_cache` (the
shared partial-parse cache), :mod:`.task_storage` (what a task uses). See ``docs/scale_out.md``.
"""

from __future__ import annotations

from airflow_dbt_provider.object_storage.locations import ObjectStorageError, is_url

__all__ = ["ObjectStorageError", "is_url"]
