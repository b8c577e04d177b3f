"""A project's manifest and a selection's nodes for rendering, with dbt run at most once per state.

Selection means exactly what ``dbt ls`` means, because dbt evaluates it: on a cache miss the
caller's ``list_nodes`` runs one ``dbt ls`` (which parses the project too). Its answer is cached
on disk, so the DAG processor — a fresh process for every parse — does not run dbt again:

* the selected unique ids, keyed by the manifest's SHA-256, the selection and the dbt version;
* a manifest dbt had to parse (none at ``target/manifest.json``, or that one was stale), keyed by a
  content hash of the project's files, the parse inputs the caller names and the dbt version.

With a manifest at hand and the selection cached (or no selection at all) nothing here imports
dbt. Staleness: an explicit ``manifest_path`` is used as given (a manifest shipped with a DAG
bundle has checkout-time mtimes); the default ``<project>/target/manifest.json`` is stale when a
project file is newer than it, and then a warning says so and the project is parsed (once per
project state, cached) instead.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from airflow_dbt_provider.core.errors import DbtConfigurationError

#: Selector methods that compare with a previous state or run, which a render has not got.
STATEFUL_METHODS = ("state", "result", "source_status")
#: What a project's content hash skips: dbt's outputs, installed packages, VCS and warehouse files.
_SKIPPED_DIRS = frozenset({"target", "logs", "dbt_packages", "dbt_modules", ".git", "__pycache__"})
_SKIPPED_SUFFIXES = (".duckdb", ".duckdb.wal", ".pyc", ".msgpack")
_STATEFUL = re.compile(r"(?:^|[\s,+@]|\d\+)(" + "|".join(STATEFUL_METHODS) + r")(?:\.[\w.]*)?:")

#: ``list_nodes(selection, manifest_out, selection_key)``: one ``dbt ls`` that writes the cache
#: itself (``manifest_out`` when a parse is needed; the ids under ``selection_key``, or, when that
#: is None, under the key of the manifest it parsed). See :mod:`airflow_dbt_provider.core.list_nodes`.
ListNodes = Callable[["Selection", "Path | None", "str | None"], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """``select``/``exclude``/``selector`` as the operators take them."""

    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selector: str | None = None

    @classmethod
    def of(
        cls, select: str | Sequence[str] | None, exclude: str | Sequence[str] | None, selector: str | None
    ) -> Selection:
        """Normalise the operators' argument shapes (a string or a list)."""
        return cls(_words(select), _words(exclude), selector or None)

    @property
    def everything(self) -> bool:
        """No selection at all: every node, as ``dbt ls`` lists them."""
        return not (self.select or self.exclude or self.selector)

    def key(self) -> str:
        """Stable text of the selection for cache keys."""
        return json.dumps([list(self.select), list(self.exclude), self.selector])

    def refuse_stateful(self, manifest: Mapping[str, Any] | None = None) -> None:
        """Raise when the selection needs a previous state (``state:``, ``result:``, ...)."""
        for name, values in (("select", self.select), ("exclude", self.exclude)):
            for value in values:
                match = _STATEFUL.search(value)
                if match:
                    raise DbtConfigurationError(_stateful_message(f"{name}={value!r}", match.group(1)))
        if self.selector and manifest is not None:
            definition = _selector_definition(manifest, self.selector)
            method = _stateful_in_definition(definition)
            if method:
                raise DbtConfigurationError(_stateful_message(f"selector={self.selector!r}", method))


@dataclass(frozen=True)
class Resolved:
    """The manifest to render and what the selection chose (``None``: everything)."""

    manifest: Mapping[str, Any]
    manifest_sha: str
    selected: frozenset[str] | None
    #: Where the manifest came from: its path, or the cache file of a parse.
    manifest_source: Path
    ran_dbt: bool


class ProjectCache:
    """Parsed manifests and evaluated selections under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def manifest_path(self, content_key: str) -> Path:
        """The cached manifest for a project state."""
        return self.root / "manifests" / f"{content_key}.json"

    def selection_path(self, key: str) -> Path:
        """The cached unique ids for a manifest and selection."""
        return self.root / "selections" / f"{key}.json"

    def read_selection(self, key: str) -> list[str] | None:
        """The cached ids, or None (also for an unreadable entry: it is then recomputed)."""
        try:
            value = json.loads(self.selection_path(key).read_bytes())
        except (OSError, ValueError):
            return None
        return [str(v) for v in value] if isinstance(value, list) else None

    def write(self, path: Path, data: bytes) -> None:
        """Write atomically; a cache never fails a render, so write errors are only logged."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("Could not write the dbt render cache %s: %s", path, exc)


def resolve(
    project_dir: Path,
    selection: Selection,
    list_nodes: ListNodes,
    cache: ProjectCache,
    *,
    manifest_path: Path | None = None,
    parse_inputs: Mapping[str, Any] | None = None,
) -> Resolved:
    """The manifest and selected ids for a render; runs ``list_nodes`` only on a cache miss."""
    selection.refuse_stateful()
    path = manifest_path if manifest_path is not None else project_dir / "target" / "manifest.json"
    raw: bytes | None = None
    source = path
    if manifest_path is not None:
        if not path.is_file():
            raise DbtConfigurationError(
                f"manifest_path {str(path)!r} does not exist; point it at a manifest.json written by "
                "dbt parse/compile, or leave it unset to parse the project"
            )
        raw = path.read_bytes()
    elif path.is_file():
        newer = newer_file(project_dir, path.stat().st_mtime_ns)
        if newer is None:
            raw = path.read_bytes()
        else:
            log.warning(
                "%s is older than %s: rendering from a fresh parse of the project instead (cached "
                "per project state). Run `dbt parse` or pass manifest_path to use a manifest as is.",
                path,
                newer,
            )
    ran_dbt = False
    if raw is None:
        content_key = _digest(content_hash(project_dir), parse_inputs or {}, _dbt_version())
        source = cache.manifest_path(content_key)
        if not source.is_file():
            list_nodes(selection, source, None)
            ran_dbt = True
        raw = source.read_bytes()
    manifest = load_json(raw)
    sha = hashlib.sha256(raw).hexdigest()
    selection.refuse_stateful(manifest)
    if selection.everything:
        return Resolved(manifest, sha, None, source, ran_dbt)
    key = selection_key(sha, selection)
    ids = cache.read_selection(key)
    if ids is None:
        list_nodes(selection, None, key)
        ran_dbt = True
        ids = cache.read_selection(key)
    if ids is None:
        raise DbtConfigurationError(f"dbt ls wrote no selection for {selection.key()} under {cache.root}")
    return Resolved(manifest, sha, frozenset(ids), source, ran_dbt)


def load_json(raw: bytes) -> Any:
    """``json.loads`` with the cyclic GC paused: a manifest is hundreds of thousands of objects, and
    collections triggered while they are allocated would scan them again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(raw)
    finally:
        if enabled:
            gc.enable()


def selection_key(manifest_sha: str, selection: Selection) -> str:
    """The cache key of a selection's ids on one manifest."""
    return _digest(manifest_sha, selection.key(), _dbt_version())


def store_listing(
    cache: ProjectCache,
    selection: Selection,
    manifest: bytes,
    ids: Sequence[str],
    *,
    manifest_out: Path | None,
    key: str | None,
) -> None:
    """Write what one ``dbt ls`` found: the parsed manifest (if asked) and the selected ids."""
    if manifest_out is not None:
        cache.write(manifest_out, manifest)
    if key is None:
        key = selection_key(hashlib.sha256(manifest).hexdigest(), selection)
    cache.write(cache.selection_path(key), json.dumps(sorted(ids)).encode())


def newer_file(project_dir: Path, than_ns: int) -> Path | None:
    """A project file modified after ``than_ns`` (nanoseconds since the epoch), if any."""
    for path in _project_files(project_dir):
        try:
            if path.stat().st_mtime_ns > than_ns:
                return path
        except OSError:
            continue
    return None


def content_hash(project_dir: Path) -> str:
    """SHA-256 over every project file's relative path and bytes (dbt's outputs skipped)."""
    digest = hashlib.sha256()
    for path in sorted(_project_files(project_dir)):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def _project_files(project_dir: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")]
        found.extend(Path(root, f) for f in files if not f.endswith(_SKIPPED_SUFFIXES))
    return found


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _dbt_version() -> str | None:
    try:
        return metadata.version("dbt-core")
    except metadata.PackageNotFoundError:
        return None


def _words(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _selector_definition(manifest: Mapping[str, Any], name: str) -> Any:
    selectors: Mapping[str, Any] = manifest.get("selectors") or {}
    if name not in selectors:
        known = ", ".join(sorted(selectors)) or "none: the project has no selectors.yml"
        raise DbtConfigurationError(f"selector={name!r} is not defined in the project (defined: {known})")
    return selectors[name].get("definition")


def _stateful_in_definition(definition: Any) -> str | None:
    if isinstance(definition, str):
        match = _STATEFUL.search(definition)
        return match.group(1) if match else None
    if isinstance(definition, Mapping):
        method = str(definition.get("method", "")).split(".", 1)[0]
        if method in STATEFUL_METHODS:
            return method
        return next((m for v in definition.values() if (m := _stateful_in_definition(v))), None)
    if isinstance(definition, list):
        return next((m for v in definition if (m := _stateful_in_definition(v))), None)
    return None


def _stateful_message(where: str, method: str) -> str:
    return (
        f"{where} uses the {method}: selector method, which compares with a previous dbt state; "
        "DbtTaskGroup renders from one manifest and has none, so it is not supported here. Select "
        "the nodes another way, or run DbtBuildOperator(select=..., dbt_flags={'state': ...}) instead"
    )
