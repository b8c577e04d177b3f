"""``DbtTaskGroup``: a dbt project rendered as Airflow tasks, one per seed, model and snapshot.

Rendering happens while the DAG processor parses the DAG file, so it is built to be cheap: the
manifest is read as JSON (no dbt import), the selection comes from a cache of one earlier
``dbt ls`` (see :mod:`airflow_dbt_provider.core.selection`), and each task is one plain operator.

Modes:

* ``per_node`` — each task runs ``dbt build --select <node> --indirect-selection=cautious`` in
  process (:class:`~airflow_dbt_provider.operators.dbt_node.DbtNodeOperator`); Airflow retries a
  node alone.
* ``single_build`` — a producer task ``<group>.dbt_build`` runs one ``dbt build`` of the
  selection and publishes each node's result; node tasks end with their own node's result (see
  :mod:`airflow_dbt_provider.operators.dbt_node`).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from airflow.sdk import Asset, AssetAlias, BaseOperator, TaskGroup

from airflow_dbt_provider.assets import BuiltAsset, asset_uri, emit_asset_events
from airflow_dbt_provider.core.errors import DbtConfigurationError
from airflow_dbt_provider.core.manifest_graph import GraphNode, ProjectGraph
from airflow_dbt_provider.core.parse_cache import default_cache_dir
from airflow_dbt_provider.core.selection import ProjectCache, Resolved, Selection, resolve

Mode = Literal["per_node", "single_build"]
MODES: tuple[str, ...] = ("per_node", "single_build")
#: Operator arguments the group sets itself per task.
_GROUP_OWNED = ("task_id", "select", "selector", "outlets", "command")
#: The ``single_build`` producer and end tasks (inside the group: ``<group>.dbt_build``).
PRODUCER_TASK_ID = "dbt_build"
END_TASK_ID = "end"
#: An absolute weight above any node task's, so executors start the producer first.
PRODUCER_PRIORITY = 1_000_000
_TASK_ID_UNSAFE = re.compile(r"[^\w.-]")

log = logging.getLogger(__name__)


class DbtTaskGroup(TaskGroup):
    """A dbt project as tasks: ``DbtTaskGroup(group_id="jaffle_shop", project_dir=...)``.

    :param group_id: the task group's id.
    :param project_dir: the dbt project directory.
    :param manifest_path: a ``manifest.json`` to render from, used as is (e.g. one shipped with
        the DAG bundle); default ``<project_dir>/target/manifest.json`` when it is up to date,
        else one cached parse of the project.
    :param profile_conn_id: build the profile from this Airflow connection (as the operators do).
    :param profiles_dir: directory holding ``profiles.yml`` (instead of ``profile_conn_id``).
    :param target: the profile target.
    :param profile_overrides: keys to set on the target built from ``profile_conn_id``.
    :param select: dbt ``--select``; the group renders what ``dbt ls`` selects.
    :param exclude: dbt ``--exclude``.
    :param selector: a YAML selector name (``state:`` methods are refused: there is no state).
    :param mode: ``"per_node"`` or ``"single_build"``.
    :param operator_args: arguments for every task (``env``, ``vars``, ``retries``, ``pool``,
        ``full_refresh``, ``dbt_executable``, ...), as the dbt operators take them.
    :param source_freshness: add one ``dbt source freshness`` task per source with a freshness
        criterion, before the nodes that read it.
    :param cache_dir: where parsed manifests and evaluated selections are cached; default the
        provider's cache directory (``$AIRFLOW_DBT_PROVIDER_CACHE_DIR``, ...).
    """

    def __init__(
        self,
        *,
        group_id: str,
        project_dir: str | os.PathLike[str],
        manifest_path: str | os.PathLike[str] | None = None,
        profile_conn_id: str | None = None,
        profiles_dir: str | os.PathLike[str] | None = None,
        target: str | None = None,
        profile_overrides: Mapping[str, Any] | None = None,
        select: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        selector: str | None = None,
        mode: Mode = "per_node",
        operator_args: Mapping[str, Any] | None = None,
        source_freshness: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        **task_group_kwargs: Any,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; choose one of {list(MODES)}")
        if profile_conn_id and profiles_dir:
            raise ValueError("Pass either profile_conn_id or profiles_dir, not both")
        owned = sorted(set(_GROUP_OWNED) & set(operator_args or {}))
        if owned:
            raise ValueError(
                f"operator_args may not set {', '.join(owned)}: DbtTaskGroup sets them per task "
                "(use select=/exclude=/selector= on the group to choose nodes)"
            )
        super().__init__(group_id=group_id, **task_group_kwargs)
        self.project_dir = Path(project_dir).expanduser()
        if not (self.project_dir / "dbt_project.yml").is_file():
            raise DbtConfigurationError(
                f"project_dir {str(self.project_dir)!r} has no dbt_project.yml; set project_dir to "
                "the directory that contains dbt_project.yml"
            )
        self.mode = mode
        self.selection = Selection.of(select, exclude, selector)
        self.profile = _ProfileArgs(
            project_dir=self.project_dir,
            profile_conn_id=profile_conn_id,
            profiles_dir=str(profiles_dir) if profiles_dir is not None else None,
            target=target,
            profile_overrides=dict(profile_overrides) if profile_overrides else None,
        )
        self.operator_args = dict(operator_args or {})
        self.cache = ProjectCache(
            Path(cache_dir) if cache_dir is not None else default_cache_dir() / "task-groups"
        )
        #: The task of each rendered node, by unique id.
        self.node_tasks: dict[str, BaseOperator] = {}
        with _gc_paused():
            self.resolved: Resolved = resolve(
                self.project_dir,
                self.selection,
                self._list_nodes,
                self.cache,
                manifest_path=Path(manifest_path).expanduser() if manifest_path is not None else None,
                parse_inputs=self.profile.parse_inputs(self.operator_args),
            )
            self.graph: ProjectGraph = self.resolved.graph
            with self:
                self._render(source_freshness)

    # -- rendering -------------------------------------------------------------------------------

    def _common_args(self) -> dict[str, Any]:
        return {**self.profile.operator_kwargs(), **self.operator_args, "project_dir": str(self.project_dir)}

    def _render(self, source_freshness: bool) -> None:
        from airflow_dbt_provider.operators.dbt_node import DbtNodeOperator, DbtNodeResultOperator

        common = self._common_args()
        exclude = list(self.selection.exclude) or None
        task_ids = _task_ids(self.graph.nodes)
        adapter = self.graph.adapter_type
        uris = {n.unique_id: _node_uri(adapter, n) for n in self.graph.nodes if n.resource_type != "test"}
        node_class: type[DbtNodeOperator] = DbtNodeOperator
        if self.mode == "single_build":
            node_class = DbtNodeResultOperator
            alias = group_asset_alias(self.dag.dag_id if self.dag else None, self.group_id)
            producer_id = self._render_producer(common, task_ids, alias, uris)
            common = {**common, "producer_task_id": producer_id, "group_alias": alias}
        for node in self.graph.nodes:
            uri = uris.get(node.unique_id)
            if self.mode == "single_build":
                per_task: dict[str, Any] = {"node_uri": uri}
            else:
                per_task = {"outlets": [Asset(uri=uri)] if uri else []}
            task = node_class(
                task_id=task_ids[node.unique_id],
                unique_id=node.unique_id,
                node_select=node.selector,
                exclude=exclude,
                **per_task,
                **common,
            )
            _link([self.node_tasks[uid] for uid in node.upstream if uid in self.node_tasks], [task])
            self.node_tasks[node.unique_id] = task
        if source_freshness:
            self._render_freshness(common)

    def _render_producer(
        self, common: dict[str, Any], task_ids: Mapping[str, str], alias: str, uris: Mapping[str, str]
    ) -> str:
        """``<group>.dbt_build`` (first in the queue) and ``<group>.end`` (``all_done``) after it."""
        from airflow_dbt_provider.operators.dbt_node import DbtBuildProducerOperator

        if common.get("dbt_executable"):
            raise ValueError(
                "mode='single_build' publishes node results from dbt's events in process; it cannot "
                "use dbt_executable. Use mode='per_node' for a dbt in another virtualenv"
            )
        if PRODUCER_TASK_ID in task_ids.values() or END_TASK_ID in task_ids.values():
            raise ValueError(
                f"A dbt node is named {PRODUCER_TASK_ID!r} or {END_TASK_ID!r}; use mode='per_node'"
            )
        selection = self.selection
        producer = DbtBuildProducerOperator(
            task_id=PRODUCER_TASK_ID,
            members={n.unique_id: (n.unique_id, *n.tests) for n in self.graph.nodes},
            select=list(selection.select) or None,
            exclude=list(selection.exclude) or None,
            selector=selection.selector,
            **{**common, "priority_weight": PRODUCER_PRIORITY, "weight_rule": "absolute"},
        )
        producer >> _GroupEnd(
            task_id=END_TASK_ID,
            trigger_rule="all_done",
            producer_task_id=producer.task_id,
            group_alias=alias,
            node_uris=dict(uris),
        )
        self.producer = producer
        return producer.task_id

    def _render_freshness(self, common: dict[str, Any]) -> None:
        from airflow_dbt_provider.operators.dbt import DbtSourceFreshnessOperator

        readers: dict[str, list[BaseOperator]] = {}
        for node in self.graph.nodes:
            for source_id in node.sources:
                readers.setdefault(source_id, []).append(self.node_tasks[node.unique_id])
        for source in self.graph.fresh_sources:
            check = DbtSourceFreshnessOperator(
                task_id=_safe_id(f"freshness__{source.source_name}__{source.name}"),
                select=source.selector,
                **common,
            )
            _link([check], readers.get(source.unique_id, []))

    # -- selection through dbt ls (cache misses only) -------------------------------------------

    def _list_nodes(self, selection: Selection, manifest_out: Path | None, selection_key: str | None) -> None:
        """One ``dbt ls`` (parsing the project) in a child process that stores its answer."""
        from airflow_dbt_provider.core.list_nodes import ListRequest, list_in_child

        args = self.operator_args
        profiles_dir, target, profile_env, private = self.profile.for_child()
        list_in_child(
            ListRequest(
                project_dir=str(self.project_dir),
                cache_root=str(self.cache.root),
                manifest_out=str(manifest_out) if manifest_out is not None else None,
                selection_key=selection_key,
                select=list(selection.select),
                exclude=list(selection.exclude),
                selector=selection.selector,
                profiles_dir=profiles_dir,
                target=target,
                vars=args.get("vars"),
                env={**(args.get("env") or {}), **profile_env},
                secrets=list(profile_env.values()),
                install_deps=args.get("install_deps", True),
                cleanup_dir=private,
            )
        )


def group_asset_alias(dag_id: str | None, group_id: str | None) -> str:
    """The ``AssetAlias`` name of a ``single_build`` group: ``dbt:<dag_id>.<group_id>``.

    Every Asset event of the group's nodes goes through it (the node tasks and ``<group>.end``
    have it as outlet), so a DAG can also be scheduled on the whole group's builds.
    """
    if not dag_id:
        raise ValueError("DbtTaskGroup(mode='single_build') must be created inside a DAG")
    return f"dbt:{dag_id}.{group_id}"


class _GroupEnd(BaseOperator):
    """Follows the producer whatever its outcome, so the group's outcome is its nodes' outcomes.

    It also emits the Asset events of the nodes the producer built: a node task that ends from a
    success record (in the triggerer, through ``TaskSuccessEvent``, or on a worker) records none,
    since Airflow registers asset events only for a task that succeeds on a worker. One event per
    node whose record is ``success``, through the group's alias; nodes that failed, were skipped
    or never finished get theirs from the node task that builds them.
    """

    ui_color = "#e8f7e4"

    def __init__(
        self, *, producer_task_id: str, group_alias: str, node_uris: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(outlets=[AssetAlias(name=group_alias)], **kwargs)
        self.producer_task_id = producer_task_id
        self.group_alias = group_alias
        self.node_uris = node_uris

    def execute(self, context: Any) -> None:
        """One Asset event per node the producer's build reported a success for."""
        from airflow_dbt_provider.triggers.dbt_task_group import DONE_KEY, record_key

        ti = context["ti"]
        done = ti.xcom_pull(task_ids=self.producer_task_id, key=DONE_KEY) or []
        built = []
        for unique_id in done:
            uri = self.node_uris.get(unique_id)
            if uri is None:
                continue
            record = ti.xcom_pull(task_ids=self.producer_task_id, key=record_key(unique_id))
            if isinstance(record, dict) and record.get("status") == "success":
                built.append(BuiltAsset(unique_id, uri))
        emit_asset_events(context, self.group_alias, built, self.log, {"producer": self.producer_task_id})


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ProfileArgs:
    """The profile arguments the operators take, and the same profile for a parse-time ``dbt ls``."""

    project_dir: Path
    profile_conn_id: str | None
    profiles_dir: str | None
    target: str | None
    profile_overrides: dict[str, Any] | None

    def operator_kwargs(self) -> dict[str, Any]:
        """What every task gets (only the arguments set)."""
        kwargs = {
            "profile_conn_id": self.profile_conn_id,
            "profiles_dir": self.profiles_dir,
            "target": self.target,
            "profile_overrides": self.profile_overrides,
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    def parse_inputs(self, operator_args: Mapping[str, Any]) -> dict[str, Any]:
        """What a parse depends on besides the project's files (for the manifest cache key)."""
        return {
            "profile_conn_id": self.profile_conn_id,
            "profiles_dir": self.profiles_dir,
            "target": self.target,
            "vars": operator_args.get("vars"),
            "env": sorted((operator_args.get("env") or {}).items()),
        }

    def for_child(self) -> tuple[str | None, str | None, dict[str, str], str | None]:
        """``(profiles_dir, target, env, private_dir)`` for a parse-time ``dbt ls``.

        With ``profile_conn_id`` the profile is written to a private directory that the child
        removes when done (it may outlive this process when the DAG processor times out).
        """
        if not self.profile_conn_id:
            return self.profiles_dir, self.target, {}, None
        from airflow.sdk import BaseHook

        from airflow_dbt_provider.profiles import target_from_connection, write_profiles_dir

        project = yaml.safe_load((self.project_dir / "dbt_project.yml").read_text()) or {}
        dbt_target = target_from_connection(
            BaseHook.get_connection(self.profile_conn_id),
            profile_name=str(project.get("profile") or project.get("name")),
            target_name=self.target or "airflow",
            overrides=self.profile_overrides,
        )
        private = write_profiles_dir(dbt_target)
        return str(private), dbt_target.target_name, dict(dbt_target.env), str(private)


def _link(upstream: Sequence[BaseOperator], downstream: Sequence[BaseOperator]) -> None:
    """Every task of ``upstream`` before every task of ``downstream``.

    What ``set_upstream`` does for operators of one DAG, without its check that they share a DAG:
    that check hashes the DAG, and a DAG's hash covers all its task ids, so one check per edge
    made rendering quadratic (a fifth of a 5,000-model render). Tasks without a DAG, or of
    different DAGs, go through ``set_upstream`` and get Airflow's own errors.
    """
    if not upstream or not downstream:
        return
    dag = downstream[0].get_dag()
    if dag is None or any(t.get_dag() is not dag for t in (*upstream, *downstream)):
        for task in downstream:
            task.set_upstream(list(upstream))
        return
    up_ids = [t.node_id for t in upstream]
    for task in downstream:
        task.upstream_task_ids.update(up_ids)
        for up in upstream:
            up.downstream_task_ids.add(task.node_id)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while the graph is read and the tasks are built: what is allocated is
    kept (the manifest until the graph is built, every task), so a collection would only walk it
    again and again (a third of a 1,000-task render); the next collection frees any cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _node_uri(adapter: str, node: GraphNode) -> str:
    return asset_uri(adapter, node.database, node.schema, node.alias or node.name)


def _safe_id(text: str) -> str:
    return _TASK_ID_UNSAFE.sub("_", text)


def _task_ids(nodes: Sequence[GraphNode]) -> dict[str, str]:
    """Task ids from node names; a name two nodes share gets its resource type and package."""
    seen: dict[str, int] = {}
    for node in nodes:
        seen[node.name] = seen.get(node.name, 0) + 1
    return {
        node.unique_id: _safe_id(
            node.name if seen[node.name] == 1 else f"{node.resource_type}__{node.package}__{node.name}"
        )
        for node in nodes
    }
