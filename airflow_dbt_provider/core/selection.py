"""A project's manifest and a selection's nodes for rendering, with dbt run at most once per state.

Selection means exactly what ``dbt ls`` means, because dbt evaluates it: on a cache miss the
caller's ``list_nodes`` runs one ``dbt ls`` (which parses the project too). Its answer is cached
on disk, so the DAG processor — a fresh process for every parse — does not run dbt again:

* the selected unique ids, keyed by the manifest's SHA-256, the selection and the dbt version;
* a manifest dbt had to parse (none at ``target/manifest.json``, or that one was stale), keyed by a
  content hash of the project's files, the parse inputs the caller names and the dbt version;
* the graph rendered from a manifest and selection (:class:`~.manifest_graph.ProjectGraph`'s
  compact JSON), keyed by the manifest's SHA-256, the selection and this code, so a parse of an
  unchanged manifest does not parse the manifest at all.

With a manifest at hand and the selection cached (or no selection at all) nothing here imports
dbt. Staleness: an explicit ``manifest_path`` is used as given (a manifest shipped with a DAG
bundle has checkout-time mtimes); the default ``<project>/target/manifest.json`` is stale when a
project file is newer than it, and then a warning says so and the project is parsed (once per
project state, cached) instead.
"""

from __future__ import annotations

import functools
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

from airflow_dbt_provider.core import manifest_graph
from airflow_dbt_provider.core.errors import DbtConfigurationError
from airflow_dbt_provider.core.manifest_graph import ProjectGraph, project_graph

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
    """The graph to render (the selection's nodes) and where it came from."""

    graph: ProjectGraph
    manifest_sha: str
    #: Where the manifest came from: its path, or the cache file of a parse.
    manifest_source: Path
    ran_dbt: bool
    #: The graph came from the render cache: the manifest was hashed but not parsed.
    cached: bool


class ProjectCache:
    """Parsed manifests, evaluated selections and rendered graphs under one directory."""

    #: Rendered graphs kept (the newest): one per manifest and selection, so a few per DAG.
    KEEP_GRAPHS = 200

    def __init__(self, root: Path) -> None:
        self.root = root

    def manifest_path(self, content_key: str) -> Path:
        """The cached manifest for a project state."""
        return self.root / "manifests" / f"{content_key}.json"

    def selection_path(self, key: str) -> Path:
        """The cached unique ids for a manifest and selection."""
        return self.root / "selections" / f"{key}.json"

    def graph_path(self, key: str) -> Path:
        """The cached graph for a manifest and selection."""
        return self.root / "graphs" / f"{key}.json"

    def read_selection(self, key: str) -> list[str] | None:
        """The cached ids, or None (also for an unreadable entry: it is then recomputed)."""
        try:
            value = json.loads(self.selection_path(key).read_bytes())
        except (OSError, ValueError):
            return None
        return [str(v) for v in value] if isinstance(value, list) else None

    def read_graph(self, key: str) -> ProjectGraph | None:
        """The cached graph, or None (also for an unreadable entry: it is then rebuilt)."""
        try:
            return ProjectGraph.from_json(self.graph_path(key).read_bytes())
        except (OSError, ValueError):
            return None

    def write_graph(self, key: str, graph: ProjectGraph) -> None:
        """Store a graph and forget the oldest beyond :attr:`KEEP_GRAPHS` (each manifest change
        adds one)."""
        path = self.graph_path(key)
        self.write(path, graph.to_json())
        try:
            entries = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for old in entries[self.KEEP_GRAPHS :]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # another parse pruned first
            log.debug("Could not prune the dbt render cache %s: %s", path.parent, exc)

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
    """The graph of a render; runs ``list_nodes`` only on a cache miss.

    The graph is cached by the manifest's SHA-256 and the selection, so a parse of an unchanged
    manifest hashes it and reads the graph (a fraction of the manifest's size) instead of
    parsing it: at 5,000 models that is 12 MB of JSON, 37 MiB once parsed.
    """
    selection.refuse_stateful()
    source, ran_dbt = _manifest_file(project_dir, selection, list_nodes, cache, manifest_path, parse_inputs)
    sha = _file_sha256(source)
    graph = cache.read_graph(graph_key(sha, selection))
    if graph is not None:
        return Resolved(graph, sha, source, ran_dbt, cached=True)
    raw = source.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()  # what is parsed is what the graph is stored under
    manifest = load_json(raw)
    del raw
    selection.refuse_stateful(manifest)
    selected: frozenset[str] | None = None
    if not selection.everything:
        key = selection_key(sha, selection)
        ids = cache.read_selection(key)
        if ids is None:
            list_nodes(selection, None, key)
            ran_dbt = True
            ids = cache.read_selection(key)
        if ids is None:
            raise DbtConfigurationError(f"dbt ls wrote no selection for {selection.key()} under {cache.root}")
        selected = frozenset(ids)
    graph = project_graph(manifest, selected)
    cache.write_graph(graph_key(sha, selection), graph)
    return Resolved(graph, sha, source, ran_dbt, cached=False)


def _manifest_file(
    project_dir: Path,
    selection: Selection,
    list_nodes: ListNodes,
    cache: ProjectCache,
    manifest_path: Path | None,
    parse_inputs: Mapping[str, Any] | None,
) -> tuple[Path, bool]:
    """The manifest to render from, and whether dbt had to run to parse it."""
    path = manifest_path if manifest_path is not None else project_dir / "target" / "manifest.json"
    if manifest_path is not None:
        if not path.is_file():
            raise DbtConfigurationError(
                f"manifest_path {str(path)!r} does not exist; point it at a manifest.json written by "
                "dbt parse/compile, or leave it unset to parse the project"
            )
        return path, False
    if path.is_file():
        newer = newer_file(project_dir, path.stat().st_mtime_ns)
        if newer is None:
            return path, False
        log.warning(
            "%s is older than %s: rendering from a fresh parse of the project instead (cached "
            "per project state). Run `dbt parse` or pass manifest_path to use a manifest as is.",
            path,
            newer,
        )
    content_key = _digest(content_hash(project_dir), parse_inputs or {}, _dbt_version())
    source = cache.manifest_path(content_key)
    if source.is_file():
        return source, False
    list_nodes(selection, source, None)
    return source, True


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


def graph_key(manifest_sha: str, selection: Selection) -> str:
    """The cache key of the graph a selection renders from one manifest.

    It names the code that builds graphs, so an upgrade of this package never renders an old
    graph; and the dbt version when a selection (which dbt evaluates) is involved.
    """
    dbt = None if selection.everything else _dbt_version()
    return _digest("graph", manifest_sha, selection.key(), dbt, _render_code())


@functools.cache
def _render_code() -> str:
    """A hash of the modules that choose and build a graph (this one and manifest_graph)."""
    digest = hashlib.sha256()
    for module_file in (__file__, manifest_graph.__file__):
        try:
            digest.update(Path(module_file).read_bytes())
        except OSError:  # no source (a frozen build): the package version has to do
            digest.update(str(_package_version()).encode())
    return digest.hexdigest()


def _package_version() -> str | None:
    try:
        return metadata.version("airflow-dbt-provider")
    except metadata.PackageNotFoundError:
        return None


def _file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (the manifest need not be held in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
