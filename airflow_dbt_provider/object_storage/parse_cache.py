"""dbt's partial-parse cache on object storage, so a cold worker (a new pod) starts warm.

One setting, for the whole deployment: the Airflow config option ``[dbt_provider]
parse_cache_url`` (``AIRFLOW__DBT_PROVIDER__PARSE_CACHE_URL``), e.g.
``s3://aws_default@my-bucket/dbt-parse-cache``. With it set, the in-process runner's local cache
(:class:`~airflow_dbt_provider.core.parse_cache.ParseCache`) looks a miss up at
``<url>/<key>/partial_parse.msgpack`` before dbt parses in full, and publishes a fresh parse
there. Why a deployment setting and not an operator argument: it is a fact about the workers
(like the cache root), the same for every task, and must not need editing every DAG.

The key is the local cache's (project path, ``dbt_project.yml``, profile, target, vars, dbt and
adapter versions), so an entry only serves a worker that runs the project at the same absolute
path: a project fetched from object storage does, under the same cache root
(:mod:`airflow_dbt_provider.object_storage.projects`). dbt still checksums every file, so a hit
on a changed project re-parses only what changed.

A cache never fails a run: a wrong URL or missing connection is a warning when the task starts
(the task parses without it), a failed download or upload a warning naming the URL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from airflow_dbt_provider.compat import conf
from airflow_dbt_provider.core.parse_cache import PARTIAL_PARSE_FILE
from airflow_dbt_provider.logs import Logger
from airflow_dbt_provider.object_storage.locations import (
    ObjectStorageError,
    join,
    make_parent_dirs,
    open_location,
    shown,
)

#: The Airflow config option that turns the cache on.
SECTION, OPTION = "dbt_provider", "parse_cache_url"
SETTING = f"[{SECTION}] {OPTION}"


def configured_parse_cache(log: Logger) -> ObjectStorageParseCache | None:
    """The cache ``[dbt_provider] parse_cache_url`` names, or ``None`` (unset, or unusable: warned)."""
    url = (conf.get(SECTION, OPTION, fallback="") or "").strip()
    if not url:
        return None
    try:
        return ObjectStorageParseCache(url, log)
    except ObjectStorageError as exc:
        log.warning("%s; this task parses without the shared parse cache", exc)
        return None


class ObjectStorageParseCache:
    """:class:`~airflow_dbt_provider.core.parse_cache.RemoteParseCache` at an object-storage URL."""

    def __init__(self, url: str, log: Logger) -> None:
        self.url = url
        self.location: Any = open_location(url, SETTING)
        self._log = log

    def _remote(self, key: str) -> str:
        return join(self.location, f"{key}/{PARTIAL_PARSE_FILE}")

    def download(self, key: str, destination: Path) -> bool:
        started = time.monotonic()
        try:
            self.location.fs.get_file(self._remote(key), str(destination))
        except FileNotFoundError:
            self._log.info("%s %s has no partial-parse file for this project yet", SETTING, shown(self.url))
            return False
        except Exception as exc:
            self._warn("download", key, exc)
            return False
        self._log.info(
            "Partial-parse file %s from %s %s (%.1f MB in %.1fs)",
            key,
            SETTING,
            shown(self.url),
            destination.stat().st_size / 1e6,
            time.monotonic() - started,
        )
        return True

    def upload(self, key: str, source: Path) -> None:
        started = time.monotonic()
        try:
            make_parent_dirs(self.location.fs, self._remote(key))
            self.location.fs.put_file(str(source), self._remote(key))
        except Exception as exc:
            self._warn("upload", key, exc)
            return
        self._log.info(
            "Published partial-parse file %s to %s %s in %.1fs",
            key,
            SETTING,
            shown(self.url),
            time.monotonic() - started,
        )

    def _warn(self, what: str, key: str, exc: Exception) -> None:
        self._log.warning(
            "Could not %s partial-parse file %s at %s %s (%s: %s); the task goes on (dbt parses in full "
            "when nothing is cached)",
            what,
            key,
            SETTING,
            shown(self.url),
            type(exc).__name__,
            exc,
        )
