"""The task-group deployment benchmark's DAG files, its latency arithmetic and its report (no deployment)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import render_task_groups
from benchmarks.task_group_deploy import _DAGS, _HEAD, ARMS, _latency


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_renders_a_valid_dag_file(arm: str) -> None:
    source = _HEAD.format(project="/p", manifest="/m.json", profiles="/pr") + _DAGS[arm].format()
    compile(source, f"bench_{arm}.py", "exec")
    assert f'"bench_{arm}"' in source


class _RunResultsApi:
    """Answers the one XCom the latency reads: the producer's run_results.json."""

    def __init__(self, run_results: dict[str, Any]) -> None:
        self.run_results = run_results

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        assert (task_id, key) == ("dbt.dbt_build", "run_results")
        return self.run_results


def _result(uid: str, completed_at: str) -> dict[str, Any]:
    return {"unique_id": uid, "timing": [{"name": "execute", "completed_at": completed_at}]}


def test_latency_counts_from_the_later_of_dbt_finishing_a_node_with_its_tests_and_the_upstream_end() -> None:
    manifest = {
        "nodes": {
            "model.p.a": {"name": "a", "depends_on": {"nodes": []}},
            "model.p.b": {"name": "b", "depends_on": {"nodes": ["model.p.a"]}},
            "test.p.not_null_a": {"name": "not_null_a", "depends_on": {"nodes": ["model.p.a"]}},
        }
    }
    run_results = {
        "results": [
            _result("model.p.a", "2026-01-01T00:00:10+00:00"),
            _result("test.p.not_null_a", "2026-01-01T00:00:12+00:00"),  # a's record is complete at 12
            _result("model.p.b", "2026-01-01T00:00:13+00:00"),
        ]
    }
    tis = [
        {"task_id": "dbt.a", "end_date": "2026-01-01T00:00:15+00:00"},  # 3 s after its test
        {"task_id": "dbt.b", "end_date": "2026-01-01T00:00:16+00:00"},  # 1 s after a's task ended
    ]
    latency = _latency(_RunResultsApi(run_results), "d", "r", tis, manifest)
    assert latency["nodes"] == 2
    assert latency["max_s"] == 3.0
    assert latency["median_s"] == 2.0
    assert latency["bound_by_upstream_end"] == 1


def _arm(wall: float, **extra: Any) -> dict[str, Any]:
    return {"state": "success", "wall_s": wall, "tasks": 3, "task_wall_median_s": 1.0,
            "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 1.0, 1.0], **extra}  # fmt: skip


def test_report_states_ratios_and_lists_each_missed_goal() -> None:
    section = {
        "n_models": 100,
        "parallelism": 4,
        "arms": {
            "floor": _arm(100.0),
            "single_build": _arm(
                150.0,
                latency={"nodes": 3, "median_s": 6.0, "max_s": 9.0, "p90_s": 8.0, "bound_by_upstream_end": 1},
            ),
            "per_node": _arm(50.0),
            "cosmos_local": _arm(100.0),
            "cosmos_watcher": {"error": "RuntimeError: did not start", "load_before": [1], "load_after": [1]},
        },
    }
    text = render_task_groups.render_section(section, "python -m benchmarks.run")
    assert "| single_build ÷ floor | 1.50x | ≤ 1.3x |" in text
    assert "| per_node ÷ cosmos_local | 0.50x | ≤ 0.7x |" in text
    assert "**did not run**: RuntimeError: did not start" in text
    assert render_task_groups.behind(section) == [
        "task groups on a deployment: single_build 1.50x the wall time of floor (goal ≤ 1.3x)",
        "single_build latency median 6.0 s (goal ≤ 5 s)",
    ]
