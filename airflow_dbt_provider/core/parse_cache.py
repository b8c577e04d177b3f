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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

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


class ParseCache:
    """Partial-parse files by key under one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path_for(self, key: str) -> Path:
        """Where the cached file for ``key`` lives."""
        return self.root / "partial-parse" / key / PARTIAL_PARSE_FILE

    def restore(self, key: str, target_path: Path) -> bool:
        """Copy the cached file into ``target_path``; return whether there was one."""
        source = self.path_for(key)
        if not source.is_file():
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
