"""A dbt project's buildable graph, read from ``manifest.json`` without importing dbt or Airflow.

:func:`project_graph` turns a manifest (and, optionally, the unique ids a selection chose) into
what a task group renders:

* one :class:`GraphNode` per seed, model and snapshot; ephemeral models build no relation, so they
  are folded into their consumers (a consumer depends on whatever the ephemeral model depends on);
  disabled nodes are not in ``manifest["nodes"]`` at all;
* a test whose only parent is such a node is *attached* to it (it runs with its node:
  ``dbt build --select <node> --indirect-selection=cautious``); any other selected test (several
  parents, a source or an ephemeral model among them, or a parent outside the selection) is a
  node of its own after every selected node it reads;
* dependencies between selected nodes go through unselected ones, as dbt orders a partial build
  (``Graph.get_subset_graph`` connects a removed node's parents to its children);
* the sources each node reads (through ephemeral models), for optional freshness checks.

It stays lean on purpose: a 1,000-model project is rendered while the DAG processor parses the
DAG file, so this is a single pass over plain dicts and small frozen records. A graph also has a
compact JSON form (:meth:`ProjectGraph.to_json`), which the render cache keeps so that later
parses of the same manifest read a few hundred kilobytes instead of the whole manifest.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

#: Resource types that become a task of their own.
BUILDABLE_TYPES = frozenset({"seed", "model", "snapshot"})
#: Resource types a selection is compared on (``dbt ls --resource-type <t>``).
SELECTABLE_TYPES = ("seed", "model", "snapshot", "test")


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One task's worth of dbt: a seed, model or snapshot (with its attached tests) or a test."""

    unique_id: str
    resource_type: str
    name: str
    package: str
    fqn: tuple[str, ...]
    original_file_path: str
    database: str | None
    schema: str | None
    alias: str | None
    #: Selected nodes this one runs after (resolved through ephemeral and unselected nodes).
    upstream: tuple[str, ...]
    #: Sources this node reads, directly or through ephemeral models.
    sources: tuple[str, ...]
    #: Single-parent tests that run in this node's task.
    tests: tuple[str, ...] = ()

    @property
    def selector(self) -> str:
        """A dbt ``--select`` value that selects exactly this node.

        An intersection of its fully qualified name, resource type and file name: the FQN alone
        is a prefix match (a directory of the same name would match too).
        """
        parts = [f"fqn:{'.'.join(self.fqn)}", f"resource_type:{self.resource_type}"]
        if self.original_file_path:
            parts.append(f"file:{self.original_file_path.rsplit('/', 1)[-1]}")
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class SourceNode:
    """A source table with a freshness criterion (``warn_after``/``error_after``)."""

    unique_id: str
    source_name: str
    name: str

    @property
    def selector(self) -> str:
        """``source:<source>.<table>``."""
        return f"source:{self.source_name}.{self.name}"


@dataclass(frozen=True, slots=True)
class ProjectGraph:
    """What a task group renders, in dependency-respecting order (parents before children)."""

    adapter_type: str
    nodes: tuple[GraphNode, ...]
    #: Sources with a freshness criterion read by at least one rendered node.
    fresh_sources: tuple[SourceNode, ...]

    def to_json(self) -> bytes:
        """The compact form :meth:`from_json` reads: one row of field values per record."""
        rows = [[getattr(n, f) for f in _NODE_FIELDS] for n in self.nodes]
        sources = [[s.unique_id, s.source_name, s.name] for s in self.fresh_sources]
        return json.dumps([self.adapter_type, rows, sources], separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ProjectGraph:
        """A graph from :meth:`to_json`; ``ValueError`` when ``data`` is not one."""
        try:
            adapter_type, rows, sources = json.loads(data)
            return cls(
                adapter_type=str(adapter_type),
                nodes=tuple(_node_from_row(row) for row in rows),
                fresh_sources=tuple(SourceNode(uid, source, name) for uid, source, name in sources),
            )
        except (TypeError, ValueError) as exc:  # not JSON, or rows of another shape
            raise ValueError(f"not a rendered dbt graph: {exc}") from exc

    def ids_by_type(self) -> dict[str, set[str]]:
        """The rendered unique ids per resource type (attached tests counted as tests)."""
        found: dict[str, set[str]] = {t: set() for t in SELECTABLE_TYPES}
        for node in self.nodes:
            found.setdefault(node.resource_type, set()).add(node.unique_id)
            found["test"].update(node.tests)
        return found


#: :class:`GraphNode`'s fields in order, and those that are tuples (JSON gives lists back).
_NODE_FIELDS = tuple(f.name for f in fields(GraphNode))
_TUPLE_FIELDS = frozenset({"fqn", "upstream", "sources", "tests"})


def _node_from_row(row: list[Any]) -> GraphNode:
    values: dict[str, Any] = {
        f: tuple(v) if f in _TUPLE_FIELDS else v for f, v in zip(_NODE_FIELDS, row, strict=True)
    }
    return GraphNode(**values)


def is_ephemeral(node: Mapping[str, Any]) -> bool:
    """Whether a manifest node is an ephemeral model (builds no relation)."""
    return node.get("resource_type") == "model" and node.get("config", {}).get("materialized") == "ephemeral"


def project_graph(manifest: Mapping[str, Any], selected: Collection[str] | None = None) -> ProjectGraph:
    """The graph to render from a parsed ``manifest.json``; ``selected`` = ``dbt ls`` unique ids.

    ``selected=None`` means everything (what ``dbt ls`` lists with no selection).
    """
    adapter_type = str(manifest.get("metadata", {}).get("adapter_type") or "")
    all_nodes: Mapping[str, Mapping[str, Any]] = manifest.get("nodes", {})
    chosen = set(all_nodes) if selected is None else set(selected)

    def renderable(uid: str) -> bool:
        node = all_nodes.get(uid)
        return node is not None and node["resource_type"] in BUILDABLE_TYPES and not is_ephemeral(node)

    attached: dict[str, list[str]] = {}
    standalone: list[str] = []
    for uid, node in all_nodes.items():
        if node.get("resource_type") != "test" or uid not in chosen:
            continue
        parents = _parents(node)
        if len(parents) == 1 and renderable(parents[0]) and parents[0] in chosen:
            attached.setdefault(parents[0], []).append(uid)
        else:
            standalone.append(uid)

    resolver = _Resolver(all_nodes, lambda uid: renderable(uid) and uid in chosen)
    rendered: list[GraphNode] = []
    for uid in _topological(all_nodes, [u for u in all_nodes if renderable(u) and u in chosen]):
        rendered.append(_graph_node(all_nodes[uid], resolver, tuple(sorted(attached.get(uid, ())))))
    for uid in sorted(standalone):
        rendered.append(_graph_node(all_nodes[uid], resolver, ()))

    read = {source for node in rendered for source in node.sources}
    sources: Mapping[str, Mapping[str, Any]] = manifest.get("sources", {})
    fresh = tuple(
        SourceNode(uid, str(sources[uid].get("source_name")), str(sources[uid].get("name")))
        for uid in sorted(read)
        if uid in sources and _has_freshness(sources[uid])
    )
    return ProjectGraph(adapter_type=adapter_type, nodes=tuple(rendered), fresh_sources=fresh)


def _parents(node: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(node.get("depends_on", {}).get("nodes") or ()))


def _graph_node(node: Mapping[str, Any], resolver: _Resolver, tests: tuple[str, ...]) -> GraphNode:
    upstream, sources = resolver.resolve(_parents(node))
    return GraphNode(
        unique_id=node["unique_id"],
        resource_type=node["resource_type"],
        name=node["name"],
        package=node.get("package_name", ""),
        fqn=tuple(node.get("fqn") or (node["name"],)),
        original_file_path=node.get("original_file_path", ""),
        database=node.get("database"),
        schema=node.get("schema"),
        alias=node.get("alias") or node.get("identifier") or node["name"],
        upstream=upstream,
        sources=sources,
        tests=tests,
    )


class _Resolver:
    """Maps a node's direct parents to the rendered nodes and sources it really waits for."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]], rendered: Any) -> None:
        self._nodes = nodes
        self._rendered = rendered
        self._memo: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def resolve(self, parents: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        upstream: set[str] = set()
        sources: set[str] = set()
        for parent in parents:
            ups, srcs = self._through(parent)
            upstream |= ups
            sources |= srcs
        return tuple(sorted(upstream)), tuple(sorted(sources))

    def _through(self, uid: str) -> tuple[frozenset[str], frozenset[str]]:
        """What depending on ``uid`` means: itself if rendered, else whatever it depends on."""
        if uid in self._memo:
            return self._memo[uid]
        result: tuple[frozenset[str], frozenset[str]]
        if uid.startswith("source."):
            result = (frozenset(), frozenset({uid}))
        elif self._rendered(uid):
            # A rendered parent is waited for; its sources are read by it, not by the child.
            result = (frozenset({uid}), frozenset())
        elif uid not in self._nodes:
            result = (frozenset(), frozenset())
        else:
            self._memo[uid] = (frozenset(), frozenset())  # cycle guard (dbt refuses cycles anyway)
            ups, srcs = self.resolve(_parents(self._nodes[uid]))
            # Sources read through an unselected *relation* are that relation's, not the child's.
            result = (frozenset(ups), frozenset(srcs) if is_ephemeral(self._nodes[uid]) else frozenset())
        self._memo[uid] = result
        return result


def _topological(nodes: Mapping[str, Mapping[str, Any]], chosen: list[str]) -> list[str]:
    """``chosen`` with every node after the nodes it (transitively) depends on; stable otherwise."""
    order: list[str] = []
    state: dict[str, int] = {}
    wanted = set(chosen)
    for root in sorted(chosen):
        if root in state:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(_parents(nodes.get(root, {}))))]
        state[root] = 1
        while stack:
            uid, children = stack[-1]
            advanced = False
            for parent in children:
                if parent in nodes and parent not in state:
                    state[parent] = 1
                    stack.append((parent, iter(_parents(nodes[parent]))))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[uid] = 2
                if uid in wanted:
                    order.append(uid)
    return order


def _has_freshness(source: Mapping[str, Any]) -> bool:
    freshness = source.get("freshness") or source.get("config", {}).get("freshness") or {}
    return any((freshness.get(level) or {}).get("count") for level in ("warn_after", "error_after"))
