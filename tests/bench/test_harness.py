"""The benchmark machinery's logic, on synthetic inputs: statistics, counting, parsing, rendering.

These never look at a time: they check that figures are computed and reported correctly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.api_efficiency import classify
from benchmarks.dbt_project import generate_project, model_name
from benchmarks.local_dbt import ARMS, _tail, dag_source, task_state
from benchmarks.render import _one_line, behind, render
from benchmarks.stats import ratio, summarize
from benchmarks.trigger_scale import count_calls, fault_plan, poll_interval_for, speed_for


def test_summary_is_median_min_max() -> None:
    assert summarize([3.0, 1.0, 2.0, 10.0]) == {"n": 4, "median": 2.5, "min": 1.0, "max": 10.0}
    assert summarize([]) is None


def test_ratio_is_ours_over_anchor_of_medians() -> None:
    ours, anchor = summarize([1.0, 2.0, 3.0]), summarize([4.0, 4.0, 4.0])
    assert ratio(ours, anchor) == pytest.approx(0.5)
    assert ratio(ours, None) is None
    assert ratio(ours, summarize([0.0])) is None


def test_generated_project_is_a_tree_over_one_seed(tmp_path: Path) -> None:
    project = generate_project(tmp_path, 10)
    models = sorted(p.stem for p in (project.project_dir / "models").glob("*.sql"))
    assert models == [model_name(i) for i in range(10)]
    assert "ref('raw_events')" in (project.project_dir / "models" / "m_0000.sql").read_text()
    assert "ref('m_0002')" in (project.project_dir / "models" / "m_0009.sql").read_text()  # (9-1)//3
    assert project.one_model == "m_0009"
    assert (
        str(project.project_dir / "warehouse.duckdb") in (project.profiles_dir / "profiles.yml").read_text()
    )
    marker = (project.project_dir / ".generated").read_text()
    assert generate_project(tmp_path, 10) == project  # unchanged inputs: reused as is
    assert (project.project_dir / ".generated").read_text() == marker
    with pytest.raises(ValueError, match="at least one model"):
        generate_project(tmp_path, 0)


@pytest.mark.parametrize("arm", sorted(ARMS))
@pytest.mark.parametrize("command", ["run", "build"])
def test_every_arm_renders_a_valid_dag_file(tmp_path: Path, arm: str, command: str) -> None:
    project = generate_project(tmp_path, 3)
    source = dag_source(ARMS[arm], command, project, f"bench_{arm}_{command}")
    compile(source, "dag.py", "exec")  # a syntax error here would only surface as "dag not found"
    assert f"bench_{arm}_{command}" in source
    assert f"SELECT = {project.one_model!r}" in source  # the leaf ``run`` selects (here m_0002)
    if arm != "baseline":
        # ``run`` runs the one leaf model, ``build`` the whole project: the task says which.
        assert ("SELECT" in ARMS[arm].task_source(command)) == (command == "run")


def test_task_state_is_the_last_state_logged() -> None:
    log = "x new_state=running y\nTask instance state updated new_state=failed rows_affected=1\n"
    assert task_state(log) == "failed"
    assert task_state("no states here") is None


def test_poll_rounds_cluster_requests_per_run() -> None:
    path = "/api/v2/accounts/1/runs/{}/"
    requests = [
        {"method": "POST", "path": "/api/v2/accounts/1/jobs/5/run/", "time": 99.0},  # before the phase
        {"method": "GET", "path": path.format(7), "time": 100.0},
        {"method": "GET", "path": path.format(7), "time": 100.1},  # a retry in the same round
        {"method": "GET", "path": path.format(7), "time": 102.0},
        {"method": "GET", "path": path.format(8), "time": 100.0},
    ]
    calls = count_calls(requests, since=100.0, poll_interval=2.0)
    assert calls == {"calls": 4.0, "poll_rounds": 3.0, "calls_per_run": 2.0, "calls_per_run_per_poll": 4 / 3}


def test_poll_interval_and_speed_keep_the_emulator_load_flat() -> None:
    for n in (100, 500, 1000):
        poll = poll_interval_for(n)
        assert n / poll <= 200
        assert speed_for(poll) * poll == pytest.approx(2.5)  # a 10 s run lasts 4 polls
    assert sum(f["count"] for f in fault_plan(1000)) == 300
    assert {f["kind"] for f in fault_plan(1000)} == {"reset", "status", "slow"}


def test_requests_are_classified_by_kind() -> None:
    requests = [
        {"method": "POST", "path": "/api/v2/accounts/1/jobs/5/run/"},
        {"method": "GET", "path": "/api/v2/accounts/1/runs/9/"},
        {"method": "GET", "path": "/api/v2/accounts/1/runs/9/"},
        {"method": "GET", "path": "/api/v2/accounts/1/runs/9/artifacts/manifest.json"},
        {"method": "GET", "path": "/api/v2/accounts/1/"},
    ]
    assert classify(requests) == {"start": 1, "poll": 2, "artifacts": 1, "other": 1, "total": 5}


def _case(arm: str, walls: list[float], command: str = "run", size: int = 10) -> dict[str, object]:
    return {
        "arm": arm, "command": command, "size": size, "samples": [{"wall_s": w} for w in walls],
        "wall_s": summarize(walls), "peak_rss_mb": summarize([300.0] * len(walls)), "error": None,
    }  # fmt: skip


def _trigger(impl: str, n: int, cpu: float, stall: float) -> dict[str, object]:
    return {"impl": impl, "n": n, "scenario": "clean", "error": None, "samples": [{}],
            "cpu_ms_per_poll": summarize([cpu]), "max_stall_ms": summarize([stall])}  # fmt: skip


def test_render_reports_ratios_unavailable_arms_and_gaps(tmp_path: Path) -> None:
    arms = {
        key: {"label": arm.label, "note": arm.note, "available": True, "reason": None}
        for key, arm in ARMS.items()
    }
    arms["cosmos"] = {
        "label": ARMS["cosmos"].label,
        "note": "",
        "available": False,
        "reason": "cannot import cosmos",
    }
    results = {
        "command": "python -m benchmarks.run",
        "machine": {"cpu_model": "Test CPU", "cpus": 2},
        "anchors": {
            "astronomer-cosmos": {"installed": False, "version": None, "reason": "does not install: x"}
        },
        "local_dbt": {
            "harness": "airflow tasks test",
            "arms": arms,
            "cases": [
                _case("floor_cold", [10.0, 11.0, 12.0]),
                _case("ours_cold", [12.0, 13.0, 14.0]),
                _case("bash", [20.0, 20.0, 20.0]),
                _case("dbt_python", [12.5, 12.5, 12.5]),
            ],
        },
        "triggers": {
            "impls": {"ours": {"available": True}, "official": {"available": True}},
            "poll_interval_rule": "N/200",
            "fault_plan": "none",
            "cases": [_trigger("ours", 1000, 2.0, 80.0), _trigger("official", 1000, 3.0, 90.0)],
        },
    }
    text = render(results, tmp_path / "r.json", tmp_path / "plot.png")
    assert "| ours (in-process, cold) | 3 | 13.00 (12.00-14.00) | 1.18x" in text
    assert "cannot import cosmos" in text
    assert "does not install: x" in text
    assert "| 1000 | CPU per poll (ms) | 2.00 | 3.00 | 0.67x |" in text
    assert "plot.png" in text
    gaps = behind(results)
    assert any("1.18x the floor" in gap for gap in gaps)
    assert any("1.04x the wall time of airflow-dbt-python" in gap for gap in gaps)  # slower than it
    assert not any("BashOperator" in gap for gap in gaps)  # faster than bash: not a gap
    assert any("CPU per poll 0.67x official" in gap for gap in gaps)
    assert any("max stall 80 ms" in gap for gap in gaps)
    assert "Smoke run" not in text
    assert "Smoke run" in render({**results, "smoke": True}, tmp_path / "r.json", None)


def test_a_failed_run_is_reported_by_its_cause_not_its_last_log_line() -> None:
    output = (
        "Traceback (most recent call last):\n  File 'x.py', line 1\n"
        "airflow.sdk.exceptions.AirflowNotFoundException: The conn_id `fs_default` isn't defined\n"
        "[info] Task instance state updated new_state=failed\n[info] [DAG TEST] end task\n"
    )
    error = _tail(output, lines=2)
    assert error.splitlines()[0].endswith("The conn_id `fs_default` isn't defined")
    assert (
        _one_line(error)
        == "airflow.sdk.exceptions.AirflowNotFoundException: The conn_id `fs_default` isn't defined"
    )
