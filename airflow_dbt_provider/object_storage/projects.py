"""A dbt project on object storage (``project_dir='s3://bucket/jaffle_shop'``), fetched once per version.

Workers of a CeleryExecutor or KubernetesExecutor deployment share no disk, so the project comes
from object storage. Downloading it for every task would cost seconds and requests, so the worker
keeps each *version* of the project in a content-addressed directory and only lists the objects
when a task starts:

* The version is a hash of the listing — every object's key, size and content tag (S3's ETag,
  GCS's md5Hash, Azure's etag; the modification time where a backend has no tag) — and the
  source's location. One ``LIST`` request (a page per 1,000 objects) tells an unchanged project
  from a changed one; an unchanged one is never downloaded again.
* The version's directory is ``<cache root>/object-storage/projects/<version>/<project name>``.
  The path depends only on the content and the cache root, so with the same cache root on every
  worker (``AIRFLOW_DBT_PROVIDER_CACHE_DIR``) every worker runs the project at the same absolute
  path — which dbt's partial-parse file requires (it keeps each file's ``root_path``), and which
  lets the parse cache on object storage serve every worker.
* A download goes into a staging directory next to the final one, published with one atomic
  rename, so two tasks fetching the same version at once both end with a complete tree (the
  loser's copy is dropped) and a killed download leaves no half project behind. Every file must
  arrive with the size the listing gave it: a project re-uploaded mid-fetch is not kept under
  the version of the listing.
* Versions of the same source unused for :data:`PRUNE_AFTER` are deleted when a newer one lands.

Only the project's own prefix is fetched: ``target/`` and ``logs/`` (dbt's outputs) are skipped,
``dbt_packages/`` is kept — upload the project after ``dbt deps`` so cold workers need no package
index (``local:`` packages must lie inside the project then).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_dbt_provider.logs import Logger
from airflow_dbt_provider.object_storage.locations import ObjectStorageError, join, open_location, shown

#: Under the cache root: one directory per fetched project version.
PROJECTS_DIR = Path("object-storage") / "projects"
#: Marks a published version (its mtime: the last time a task used it).
COMPLETE = ".complete"
#: The display URL a version came from (to prune only that source's old versions).
SOURCE = ".source"
#: Top-level entries of a project that are dbt's own output, never fetched.
SKIPPED = frozenset({"target", "logs"})
#: Seconds a superseded version may stay unused before a newer version's fetch deletes it.
PRUNE_AFTER = 24 * 3600.0
#: Per object, the first of these listing fields that is set versions it (content tags first:
#: a re-upload of identical bytes keeps the version).
_VERSION_FIELDS = (
    "ETag",
    "etag",
    "md5Hash",
    "content_md5",
    "VersionId",
    "generation",
    "mtime",
    "LastModified",
)


def fetch_project(url: str, cache_root: Path, log: Logger) -> Path:
    """The local directory of the project at ``url``'s current version, downloading it if new."""
    checking = time.monotonic()
    source = open_location(url, "project_dir")
    listing = _listing(source, url)
    version = content_version(_identity(source), listing)
    final = Path(cache_root) / PROJECTS_DIR / version
    project = final / _project_name(source)
    if (final / COMPLETE).is_file():
        _mark_used(final)
        log.info(
            "project_dir %s is unchanged (version %s, %d files, checked in %.2fs): using %s",
            shown(url),
            version,
            len(listing),
            time.monotonic() - checking,
            project,
        )
        return project
    started = time.monotonic()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=final.parent))
    try:
        _download(source, listing, staging / project.name, url)
        (staging / SOURCE).write_text(_identity(source))
        (staging / COMPLETE).touch()
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "project_dir %s: fetched version %s (%d files, %.1f MB) in %.1fs into %s",
        shown(url),
        version,
        len(listing),
        sum(size for size, _ in listing.values()) / 1e6,
        time.monotonic() - started,
        project,
    )
    _prune(final, _identity(source), log)
    return project


def content_version(source: str, listing: dict[str, tuple[int, str]]) -> str:
    """The version of a project: a hash of its source and each object's key, size and tag."""
    digest = hashlib.sha256(json.dumps([source, sorted(listing.items())], default=str).encode())
    return digest.hexdigest()[:24]


def _identity(source: Any) -> str:
    """Where the project lives, without the connection id (which may differ between deployments)."""
    return f"{source.protocol or 'file'}://{str(source.path).rstrip('/')}"


def _listing(source: Any, url: str) -> dict[str, tuple[int, str]]:
    """``{relative key: (size, version tag)}`` of the project's files, from one listing."""
    root = str(source.path).rstrip("/")
    try:
        source.fs.invalidate_cache(root)  # a listing cached earlier in this process may be stale
        found = source.fs.find(root, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        found = {}
    except Exception as exc:
        raise ObjectStorageError(
            f"project_dir={shown(url)!r} could not be listed ({type(exc).__name__}: {exc}); check the "
            "bucket, the prefix and the connection's permissions"
        ) from exc
    listing: dict[str, tuple[int, str]] = {}
    for key, info in found.items():
        relative = str(key)[len(root) :].lstrip("/")
        if info.get("type") == "directory" or not relative or relative.endswith("/"):
            continue
        if relative.split("/", 1)[0] in SKIPPED:
            continue
        listing[relative] = (int(info.get("size") or 0), _tag(info))
    if "dbt_project.yml" not in listing:
        raise ObjectStorageError(
            f"project_dir={shown(url)!r} holds no dbt_project.yml"
            + (f" (it lists {len(listing)} other files)" if listing else " (nothing is stored there)")
            + "; set project_dir to the prefix whose top holds dbt_project.yml"
        )
    return listing


def _tag(info: dict[str, Any]) -> str:
    for field in _VERSION_FIELDS:
        value = info.get(field)
        if value:
            return f"{field}={value}"
    return ""


def _project_name(source: Any) -> str:
    return str(source.path).rstrip("/").rsplit("/", 1)[-1] or "project"


def _download(source: Any, listing: dict[str, tuple[int, str]], destination: Path, url: str) -> None:
    """All files in one ``get``: fsspec's async backends (s3fs, gcsfs, adlfs) fetch them concurrently."""
    remote = [join(source, relative) for relative in sorted(listing)]
    local = [str(destination / relative) for relative in sorted(listing)]
    for path in {os.path.dirname(p) for p in local}:
        os.makedirs(path, exist_ok=True)
    try:
        source.fs.get(remote, local)
    except Exception as exc:
        raise ObjectStorageError(
            f"project_dir={shown(url)!r} could not be downloaded ({type(exc).__name__}: {exc}); the "
            "objects may have changed during the fetch (the next try lists them again)"
        ) from exc
    _check_arrived(listing, destination, url)


def _check_arrived(listing: dict[str, tuple[int, str]], destination: Path, url: str) -> None:
    """Every listed file arrived, with the size the listing gave it.

    Why: the version is the hash of the *listing*; an object replaced between the listing and
    its download would put other bytes under that version, for good (an unchanged version is
    never downloaded again). A size check is free (no request); the staged copy is dropped.
    """
    missing, changed = [], []
    for relative, (size, _) in sorted(listing.items()):
        try:
            arrived = (destination / relative).stat().st_size
        except FileNotFoundError:
            missing.append(relative)
            continue
        if arrived != size:
            changed.append(f"{relative} ({arrived} bytes, listed with {size})")
    if missing:
        raise ObjectStorageError(
            f"project_dir={shown(url)!r}: {len(missing)} listed file(s) did not arrive, e.g. {missing[0]}"
        )
    if changed:
        raise ObjectStorageError(
            f"project_dir={shown(url)!r} changed while it was downloaded: {len(changed)} file(s) differ "
            f"from the listing, e.g. {changed[0]}; nothing was kept (the next try lists it again)"
        )


def _publish(staging: Path, final: Path) -> None:
    """Rename the staged version into place; a concurrent fetch that won keeps its copy."""
    try:
        os.rename(staging, final)
    except OSError:
        if not (final / COMPLETE).is_file():
            shutil.rmtree(final, ignore_errors=True)  # a leftover without .complete: not a version
            os.rename(staging, final)


def _mark_used(version_dir: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves the version
        os.utime(version_dir / COMPLETE)


def _prune(current: Path, source: str, log: Logger) -> None:
    """Delete this source's other versions that no task used for :data:`PRUNE_AFTER` seconds."""
    now = time.time()
    for version in current.parent.iterdir():
        if version.name.startswith(".staging-"):  # a fetch killed mid-download
            with contextlib.suppress(OSError):
                if now - version.stat().st_mtime > PRUNE_AFTER:
                    shutil.rmtree(version, ignore_errors=True)
            continue
        if version == current or version.name.startswith("."):
            continue
        try:
            if (version / SOURCE).read_text() != source:
                continue
            idle = now - (version / COMPLETE).stat().st_mtime
        except OSError:
            continue
        if idle > PRUNE_AFTER:
            shutil.rmtree(version, ignore_errors=True)
            log.info(
                "Deleted version %s of project_dir %s (unused for %.0f h)", version.name, source, idle / 3600
            )
