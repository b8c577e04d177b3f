"""What keeps DbtTaskGroup's parse cheap must not change what it renders: the graph cache, the edges."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_dbt_provider.core.manifest_graph import ProjectGraph, project_graph
from airflow_dbt_provider.core.selection import ProjectCache
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

PKG = "jaffle_shop"


def render(
    project: Path, cache: Path, manifest: Path, *, dag_id: str = "cached", **kwargs: Any
) -> DbtTaskGroup:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1)):
        return DbtTaskGroup(
            group_id="jaffle", project_dir=project, cache_dir=cache, manifest_path=manifest, **kwargs
        )


def rendered(group: DbtTaskGroup) -> dict[str, Any]:
    """Everything a node task carries that the graph decides."""
    return {
        uid: (t.task_id, t.select, t.exclude, sorted(t.upstream_task_ids), sorted(t.downstream_task_ids),
              [o.uri for o in t.outlets])
        for uid, t in group.node_tasks.items()
    }  # fmt: skip


def test_graph_json_round_trips_and_refuses_what_is_not_one(tg_manifest: Path) -> None:
    graph = project_graph(json.loads(tg_manifest.read_bytes()))
    assert any(n.tests for n in graph.nodes)
    assert any(n.upstream for n in graph.nodes)
    assert ProjectGraph.from_json(graph.to_json()) == graph
    rows = json.loads(graph.to_json())
    rows[1][0] = rows[1][0][:-1]  # a node row short of a field
    for bad in (b"{not json", b'{"a": 1}', json.dumps(rows).encode()):
        with pytest.raises(ValueError, match="not a rendered dbt graph"):
            ProjectGraph.from_json(bad)


def test_second_parse_reads_the_graph_and_renders_the_same(
    tg_project: Path, tg_manifest: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    everything: dict[str, Any] = {}
    for selection in ({}, {"select": "+customers", "exclude": "raw_orders"}):
        first = render(tg_project, cache, tg_manifest, dag_id="first", **selection)
        again = render(tg_project, cache, tg_manifest, dag_id="again", **selection)
        assert (first.resolved.cached, again.resolved.cached) == (False, True)
        assert again.graph == first.graph
        assert rendered(again) == rendered(first)
        everything = everything or rendered(first)
    assert len(rendered(again)) < len(everything)
    assert len(list((cache / "graphs").iterdir())) == 2  # one per manifest and selection
    # an unreadable entry is rebuilt, not trusted
    for entry in (cache / "graphs").iterdir():
        entry.write_text('["duckdb", [["model.x"]], []]')
    rebuilt = render(tg_project, cache, tg_manifest, dag_id="rebuilt")
    assert not rebuilt.resolved.cached
    assert rendered(rebuilt) == everything
    assert render(tg_project, cache, tg_manifest, dag_id="fixed").resolved.cached


def test_a_changed_manifest_is_rendered_anew(tg_project: Path, tg_manifest: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = render(tg_project, cache, tg_manifest, dag_id="before")
    manifest = json.loads(tg_manifest.read_bytes())
    manifest["nodes"][f"model.{PKG}.orders"]["alias"] = "orders_v2"
    changed = tmp_path / "manifest.json"
    changed.write_text(json.dumps(manifest))
    after = render(tg_project, cache, changed, dag_id="after")
    assert not after.resolved.cached
    uri = next(o.uri for o in after.node_tasks[f"model.{PKG}.orders"].outlets)
    assert uri.endswith("/orders_v2")
    assert before.resolved.manifest_sha != after.resolved.manifest_sha


def test_the_graph_cache_keeps_the_newest_entries(tg_manifest: Path, tmp_path: Path) -> None:
    cache = ProjectCache(tmp_path)
    cache.KEEP_GRAPHS = 2
    graph = project_graph(json.loads(tg_manifest.read_bytes()))
    for key in ("a", "b", "c"):
        cache.write_graph(key, graph)
    assert sorted(p.name for p in (tmp_path / "graphs").iterdir()) == ["b.json", "c.json"]
    assert cache.read_graph("c") == graph
    assert cache.read_graph("a") is None


def test_edges_are_set_on_both_ends(tg_project: Path, tg_manifest: Path, tmp_path: Path) -> None:
    """Edges are set in bulk, not by ``set_upstream``: each one must be on both of its tasks."""
    group = render(tg_project, tmp_path, tg_manifest, source_freshness=True)
    dag = group.dag
    edges = {(u, t.task_id) for t in dag.tasks for u in t.upstream_task_ids}
    assert edges == {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    by_id = {n.unique_id: n for n in group.graph.nodes}
    for uid, task in group.node_tasks.items():
        expected = {group.node_tasks[u].task_id for u in by_id[uid].upstream}
        assert expected <= task.upstream_task_ids
    assert ("jaffle.freshness__raw__raw_customers", "jaffle.stg_raw_customers") in edges
    assert len(edges) > len(group.node_tasks)
    dag.validate()
    assert not dag.check_cycle()
