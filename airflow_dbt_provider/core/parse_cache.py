"""A cross-process cache of dbt's ``partial_parse.msgpack``.

Every Airflow task is its own process with its own temporary ``target-path``, so dbt would parse
the project from scratch each time. This cache keeps the file dbt writes after parsing and copies
it into the next invocation's target path before dbt starts. Both copies go through a temporary
file and ``os.replace``, so a concurrent reader sees the old file or the new one, never half of
one.

The key covers what dbt's own partial-parse check cannot see or that must match exactly: the
project's resolved path (parsed nodes remember their root path, e.g. to load seed files), its
``dbt_project.yml``, the profile and target, ``--vars``, and the dbt and adapter versions. dbt
still checks every file's checksum, so a changed model only re-parses that model.

A :class:`RemoteParseCache` (e.g. the Airflow side's object-storage cache) extends the local one
across machines: a miss here is looked up there before dbt parses in full, and a fresh parse is
published there too. Because the key holds the project's path, a remote entry only helps a worker
that runs the project at the same path (a project fetched from object storage lands at the same
content-addressed path under every worker's cache root, when that root is the same path).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

PARTIAL_PARSE_FILE = "partial_parse.msgpack"
CACHE_DIR_ENV = "AIRFLOW_DBT_PROVIDER_CACHE_DIR"
_VERSIONED_DISTRIBUTIONS = ("dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-postgres")


def default_cache_dir() -> Path:
    """Where the cache lives: ``$AIRFLOW_DBT_PROVIDER_CACHE_DIR``, else under ``$AIRFLOW_HOME``,
    else the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    airflow_home = os.environ.get("AIRFLOW_HOME")
    if airflow_home:
        return Path(airflow_home).expanduser() / ".dbt-provider-cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "airflow-dbt-provider"


def cache_key(
    *,
    project_dir: Path,
    profiles_yml: bytes,
    profile: str | None,
    target: str | None,
    vars: Mapping[str, Any] | None,
) -> str:
    """A stable hash of every parse-time input the cache must not mix up."""
    project_dir = project_dir.resolve()
    parts = {
        "project_dir": str(project_dir),
        "dbt_project_yml": _sha256(project_dir / "dbt_project.yml"),
        "profiles_yml": hashlib.sha256(profiles_yml).hexdigest(),
        "profile": profile,
        "target": target,
        "vars": vars or {},
        "versions": {name: _version(name) for name in _VERSIONED_DISTRIBUTIONS},
    }
    encoded = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


class RemoteParseCache(Protocol):
    """Partial-parse files shared beyond this machine; neither method may raise."""

    def download(self, key: str, destination: Path) -> bool:
        """Write the entry for ``key`` to the file ``destination``; return whether there was one."""

    def upload(self, key: str, source: Path) -> None:
        """Publish the file ``source`` as the entry for ``key``."""


class ParseCache:
    """Partial-parse files by key under one directory, optionally backed by a remote cache."""

    def __init__(self, root: Path | None = None, remote: RemoteParseCache | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.remote = remote

    def path_for(self, key: str) -> Path:
        """Where the cached file for ``key`` lives."""
        return self.root / "partial-parse" / key / PARTIAL_PARSE_FILE

    def restore(self, key: str, target_path: Path) -> bool:
        """Copy the cached file into ``target_path``; return whether there was one."""
        source = self.path_for(key)
        if not source.is_file() and not self._download(key, source):
            return False
        target_path.mkdir(parents=True, exist_ok=True)
        try:
            _atomic_copy(source, target_path / PARTIAL_PARSE_FILE)
        except FileNotFoundError:  # evicted between the check and the copy
            return False
        return True

    def store(self, key: str, target_path: Path) -> bool:
        """Copy dbt's freshly written file from ``target_path`` into the cache.

        Returns False when dbt wrote none (partial parsing off, or the command did not parse) or
        the cache directory is not writable — a cache must never fail a run.
        """
        source = target_path / PARTIAL_PARSE_FILE
        if not source.is_file():
            return False
        destination = self.path_for(key)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            _atomic_copy(source, destination)
        except OSError:
            return False
        if self.remote is not None:
            with contextlib.suppress(Exception):  # as above: never fail a run
                self.remote.upload(key, destination)
        return True

    def _download(self, key: str, destination: Path) -> bool:
        """Fill the local entry for ``key`` from the remote cache (through a temporary file)."""
        if self.remote is None:
            return False
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
        except OSError:
            return False
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if not self.remote.download(key, tmp):
                return False
            os.replace(tmp, destination)
        except Exception:  # the protocol says it never raises; a cache must never fail a run anyway
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True


def _atomic_copy(source: Path, destination: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
