"""DbtTaskGroup rendering on a real project: selection equals ``dbt ls``, folding, caching, Assets."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_dbt_provider.core import DbtConfigurationError, DbtRunner
from airflow_dbt_provider.core.manifest_graph import SELECTABLE_TYPES
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup

PKG = "jaffle_shop"


def ls(runner: DbtRunner, resource_type: str, **selection: object) -> set[str]:
    """``dbt ls --resource-type <t>`` with the given select/exclude/selector: unique ids."""
    params = {k: v for k, v in selection.items() if v}
    result = runner.invoke(
        ["ls", "--output", "json", "--output-keys", "unique_id", "--resource-type", resource_type], **params
    )
    assert result.success, result.error_messages
    return {json.loads(line)["unique_id"] for line in result.output or ()}


#: Each selection costs one dbt ls in a child process, so the categories are combined: graph
#: operators (+, @, n+), tags, paths, resource_type, config., unions, intersections, exclude, selector.
SELECTIONS: list[dict[str, Any]] = [
    {"select": "+customers"},
    {"select": "@stg_orders"},
    {"select": "2+customers stg_customers+1"},
    {"select": "tag:nightly path:models/staging"},
    {"select": "+orders,config.materialized:view"},
    {
        "select": ["resource_type:seed resource_type:snapshot", "+customer_order_stats"],
        "exclude": "raw_orders",
    },
    {"selector": "nightly_marts"},
]


def render(project: Path, cache: Path, *, dag_id: str = "render", **kwargs: Any) -> DbtTaskGroup:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1)):
        return DbtTaskGroup(group_id="jaffle", project_dir=project, cache_dir=cache, **kwargs)


@pytest.fixture(scope="module")
def render_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render-cache")


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: json.dumps(s))
def test_rendered_nodes_equal_dbt_ls(
    selection: dict[str, Any],
    tg_project: Path,
    tg_manifest: Path,
    tg_runner: DbtRunner,
    tg_warehouse: Path,
    render_cache: Path,
) -> None:
    group = render(
        tg_project,
        render_cache,
        manifest_path=tg_manifest,
        operator_args={"env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tg_warehouse)}},
        **selection,
    )
    manifest = json.loads(tg_manifest.read_bytes())
    ephemeral = {u for u, n in manifest["nodes"].items() if n["config"].get("materialized") == "ephemeral"}
    rendered = group.graph.ids_by_type()
    for resource_type in SELECTABLE_TYPES:
        expected = ls(tg_runner, resource_type, **selection) - ephemeral
        assert rendered[resource_type] == expected, resource_type
    assert sum(len(v) for v in rendered.values()) > 0


def test_graph_folds_ephemeral_and_attaches_tests(
    tg_project: Path, tg_manifest: Path, render_cache: Path
) -> None:
    group = render(tg_project, render_cache, manifest_path=tg_manifest)
    tasks = {t.task_id: t for t in group.node_tasks.values()}
    assert f"model.{PKG}.order_stats" not in group.node_tasks  # ephemeral: folded
    stats = tasks["jaffle.customer_order_stats"]
    assert stats.upstream_task_ids == {"jaffle.orders", "jaffle.stg_customers"}  # through the ephemeral
    by_id = {n.unique_id: n for n in group.graph.nodes}
    orders = by_id[f"model.{PKG}.orders"]
    assert f"test.{PKG}.assert_order_amount_not_negative" in orders.tests
    assert any(t.startswith(f"test.{PKG}.unique_orders_order_id") for t in orders.tests)
    relationships = next(n for n in group.graph.nodes if n.name.startswith("relationships_orders"))
    assert relationships.resource_type == "test"
    assert set(relationships.upstream) == {f"model.{PKG}.orders", f"model.{PKG}.customers"}
    # dependencies through an unselected node, as dbt orders a partial build
    partial = render(
        tg_project, render_cache, manifest_path=tg_manifest, dag_id="partial", select="raw_orders orders"
    )
    assert partial.node_tasks[f"model.{PKG}.orders"].upstream_task_ids == {"jaffle.raw_orders"}


def test_node_tasks_select_exactly_their_node_and_its_tests(
    tg_project: Path, tg_manifest: Path, tg_runner: DbtRunner, render_cache: Path
) -> None:
    group = render(tg_project, render_cache, manifest_path=tg_manifest)
    by_id = {n.unique_id: n for n in group.graph.nodes}
    for uid in (f"model.{PKG}.orders", f"seed.{PKG}.raw_orders", f"snapshot.{PKG}.customers_snapshot"):
        node = by_id[uid]
        task = group.node_tasks[uid]
        assert task.dbt_flags == {"indirect_selection": "cautious"}
        selected = {
            json.loads(line)["unique_id"]
            for line in tg_runner.invoke(
                ["ls", "--output", "json", "--output-keys", "unique_id", "--indirect-selection", "cautious"],
                select=[task.select],
            ).output
        }
        assert selected == {uid, *node.tests}


def test_outlets_are_the_node_assets(tg_project: Path, tg_manifest: Path, render_cache: Path) -> None:
    group = render(tg_project, render_cache, manifest_path=tg_manifest)
    manifest = json.loads(tg_manifest.read_bytes())
    database = manifest["nodes"][f"model.{PKG}.orders"]["database"]
    task = group.node_tasks[f"model.{PKG}.orders"]
    assert [o.uri for o in task.outlets] == [f"dbt://duckdb/{database}/main/orders"]
    seed = group.node_tasks[f"seed.{PKG}.raw_orders"]
    assert [o.uri for o in seed.outlets] == [f"dbt://duckdb/{database}/main_raw/raw_orders"]


def test_source_freshness_runs_before_readers(
    tg_project: Path, tg_manifest: Path, render_cache: Path
) -> None:
    group = render(tg_project, render_cache, manifest_path=tg_manifest, source_freshness=True)
    check = group.dag.task_dict["jaffle.freshness__raw__raw_customers"]
    assert check.select == "source:raw.raw_customers"
    assert check.downstream_task_ids == {"jaffle.stg_raw_customers"}


@pytest.mark.parametrize(
    ("selection", "where"),
    [
        ({"select": "state:modified+"}, "select='state:modified+'"),
        ({"exclude": "result:error"}, "exclude='result:error'"),
        ({"selector": "changed"}, "selector='changed'"),
    ],
)
def test_stateful_selection_is_refused(
    selection: dict[str, Any], where: str, tg_project: Path, tg_manifest: Path, render_cache: Path
) -> None:
    with pytest.raises(DbtConfigurationError, match="not supported here") as info:
        render(tg_project, render_cache, manifest_path=tg_manifest, **selection)
    assert where in str(info.value)


def test_unknown_selector_and_bad_arguments(tg_project: Path, tg_manifest: Path, render_cache: Path) -> None:
    with pytest.raises(DbtConfigurationError, match=r"selector='nope' is not defined.*nightly_marts"):
        render(tg_project, render_cache, manifest_path=tg_manifest, selector="nope")
    with pytest.raises(ValueError, match="mode='everything'"):
        render(tg_project, render_cache, manifest_path=tg_manifest, mode="everything")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator_args may not set select"):
        render(tg_project, render_cache, manifest_path=tg_manifest, operator_args={"select": "x"})
    with pytest.raises(DbtConfigurationError, match=r"manifest_path .* does not exist"):
        render(tg_project, render_cache, manifest_path=tg_manifest.parent / "missing.json")


_CHILD = """
import json, os, signal, sys
from datetime import datetime
if os.environ.get("RENDER_TIMEOUT"):  # as the DAG processor's dagbag_import_timeout interrupts a parse
    class ImportTimeout(BaseException):  # Airflow raises AirflowTaskTimeout, a BaseException
        pass
    def _timeout(*_):
        raise ImportTimeout("DagBag import timeout")
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(int(os.environ["RENDER_TIMEOUT"]))
from airflow.sdk import DAG
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup
with DAG("child", schedule=None, start_date=datetime(2026, 1, 1)):
    group = DbtTaskGroup(
        group_id="jaffle", project_dir=sys.argv[1], cache_dir=sys.argv[2], select=sys.argv[3] or None,
        operator_args={"env": {"JAFFLE_SHOP_DUCKDB_PATH": sys.argv[4]}},
    )
print(json.dumps({"ran_dbt": group.resolved.ran_dbt, "dbt_imported": "dbt" in sys.modules,
                  "tasks": len(group.node_tasks), "source": str(group.resolved.manifest_source)}))
"""


def _render_in_child(
    project: Path, cache: Path, select: str, warehouse: Path, *, timeout: int | None = None
) -> dict[str, Any]:
    """Render in a fresh process, as the DAG processor does for every parse."""
    env = {**os.environ, "RENDER_TIMEOUT": str(timeout or "")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(project), str(cache), select, str(warehouse)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if timeout:
        assert "DagBag import timeout" in done.stderr, done.stderr
        return {}
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["stderr"] = done.stderr
    return out


def test_dbt_runs_once_per_project_state(tg_project: Path, tmp_path: Path, tg_warehouse: Path) -> None:
    """No manifest: one parse, cached by content; a cached selection never imports dbt."""
    project = tmp_path / "jaffle_shop"
    shutil.copytree(tg_project, project, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(tg_project.parent / "jaffle_utils", tmp_path / "jaffle_utils")
    cache = tmp_path / "cache"
    first = _render_in_child(project, cache, "+customers", tg_warehouse)
    assert first["ran_dbt"]
    assert not first["dbt_imported"]  # dbt ran in a child of its own
    assert Path(first["source"]).parent == cache / "manifests"
    again = _render_in_child(project, cache, "+customers", tg_warehouse)
    assert again == {**first, "ran_dbt": False, "dbt_imported": False, "stderr": again["stderr"]}
    # a new selection on the same state: dbt ls once more, no second manifest
    other = _render_in_child(project, cache, "stg_orders", tg_warehouse)
    assert other["ran_dbt"]
    assert other["tasks"] == 1
    assert len(list((cache / "manifests").iterdir())) == 1
    # a changed file is a new project state: parsed again
    (project / "models" / "marts" / "orders.sql").write_text(
        (project / "models" / "marts" / "orders.sql").read_text() + "\n-- changed\n"
    )
    changed = _render_in_child(project, cache, "+customers", tg_warehouse)
    assert changed["ran_dbt"]
    assert len(list((cache / "manifests").iterdir())) == 2


def test_target_manifest_used_when_fresh_and_reparsed_when_stale(
    tg_project: Path, tg_manifest: Path, tmp_path: Path, tg_warehouse: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / "jaffle_shop"
    shutil.copytree(tg_project, project, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(tg_project.parent / "jaffle_utils", tmp_path / "jaffle_utils")
    (project / "target").mkdir()
    target_manifest = project / "target" / "manifest.json"
    shutil.copyfile(tg_manifest, target_manifest)
    cache = tmp_path / "cache"
    fresh = _render_in_child(project, cache, "", tg_warehouse)
    assert fresh == {**fresh, "ran_dbt": False, "dbt_imported": False, "source": str(target_manifest)}
    # a model edited after the manifest was written: warn, parse once, render the new model
    later = time.time_ns() + 5_000_000_000
    new_model = project / "models" / "marts" / "brand_new.sql"
    new_model.write_text("select 1 as id\n")
    os.utime(new_model, ns=(later, later))
    with caplog.at_level(logging.WARNING, logger="airflow_dbt_provider.core.selection"):
        group = render(project, cache, operator_args={"env": {"JAFFLE_SHOP_DUCKDB_PATH": str(tg_warehouse)}})
    assert group.resolved.ran_dbt
    assert f"model.{PKG}.brand_new" in group.node_tasks
    assert any(
        "is older than" in r.getMessage() and "brand_new.sql" in r.getMessage() for r in caplog.records
    )
    stale_again = _render_in_child(project, cache, "", tg_warehouse)
    assert not stale_again["ran_dbt"]
    assert not stale_again["dbt_imported"]
    # an explicit manifest_path is used as is, however old
    explicit = render(project, cache, manifest_path=target_manifest)
    assert not explicit.resolved.ran_dbt
    assert f"model.{PKG}.brand_new" not in explicit.node_tasks


def test_a_parse_interrupted_by_the_import_timeout_loses_no_dbt_work(
    tg_project: Path, tmp_path: Path, tg_warehouse: Path
) -> None:
    """dbt runs in a child of its own session: it finishes and caches though the parse was cut off."""
    project = tmp_path / "jaffle_shop"
    shutil.copytree(tg_project, project, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(tg_project.parent / "jaffle_utils", tmp_path / "jaffle_utils")
    cache = tmp_path / "cache"
    _render_in_child(project, cache, "+customers", tg_warehouse, timeout=2)  # dbt takes longer
    # The interrupted parse's child carries on; a parse meanwhile waits for it instead of a 2nd dbt.
    waited = _render_in_child(project, cache, "+customers", tg_warehouse)
    assert not waited["ran_dbt"] or not list((cache / "locks").iterdir())
    assert waited["tasks"] == 9
    deadline = time.monotonic() + 120
    while list((cache / "locks").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = list((cache / "logs").iterdir())
    assert len(logs) == 1  # one dbt ls for this project state, however many parses
    assert len(list((cache / "manifests").iterdir())) == 1
    after = _render_in_child(project, cache, "+customers", tg_warehouse)
    assert not after["ran_dbt"]
    assert after["tasks"] == 9
