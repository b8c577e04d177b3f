"""The BENCHMARKS.md sections of the task-group benchmarks: deployment and DAG-file parse.

``benchmarks/task_group_deploy.py`` and ``benchmarks/task_group_parse.py`` measure.

Pure formatting of the ``task_group_deploy`` results: one table of the five arms' wall times with
the ratios the issue sets goals for, the ``single_build`` latency, and where a ``per_node`` task's
time goes. :func:`behind` lists every goal missed, for "Where we are behind".
"""

from __future__ import annotations

from typing import Any

#: (ours, anchor, goal: ours ÷ anchor at most this; None = reported without a goal).
RATIOS = (
    ("single_build", "floor", 1.3),
    ("per_node", "cosmos_local", 0.7),
    ("single_build", "cosmos_watcher", None),
)
LATENCY_GOALS = {"median_s": 5.0, "max_s": 15.0}
LABELS = {
    "floor": "floor: one DbtBuildOperator + the same graph of EmptyOperators beside it",
    "single_build": "ours: DbtTaskGroup(mode='single_build')",
    "per_node": "ours: DbtTaskGroup(mode='per_node')",
    "cosmos_local": "cosmos DbtTaskGroup, LOCAL + DBT_RUNNER, TestBehavior.BUILD",
    "cosmos_watcher": "cosmos DbtTaskGroup, ExecutionMode.WATCHER",
}
PHASES = (
    ("airflow_pre_execute_median_s", "task start to pre-execute end (DAG-file parse, context)"),
    ("to_dbt_start_median_s", "to dbt's first line (imports: dbt, adapter; profile; runner set-up)"),
    ("dbt_parse_median_s", "dbt start-up (adapter registration, partial parse, graph)"),
    ("dbt_nodes_median_s", "the node and its tests"),
    ("after_dbt_median_s", "after dbt (artifacts, XCom, task end)"),
)


def _ratio(arms: dict[str, Any], ours: str, anchor: str) -> float | None:
    a, b = arms.get(ours, {}).get("wall_s"), arms.get(anchor, {}).get("wall_s")
    ok = arms.get(ours, {}).get("state") == "success" and arms.get(anchor, {}).get("state") == "success"
    return a / b if ok and a and b else None


def render_section(section: dict[str, Any], command: str) -> str:
    arms = section["arms"]
    lines = [
        "## A dbt project as tasks, end to end on a deployment",
        "",
        f"A {section['n_models']}-model project (`benchmarks/dbt_project.py`, PostgreSQL profile) on one "
        "LocalExecutor deployment (`tests/support/airflow_deployment.py`, tuned heartbeats) with a "
        "PostgreSQL metadata DB and a PostgreSQL warehouse on one server; `[core] parallelism` = "
        f"dbt `threads` = {section['parallelism']} for every arm; manifest shipped (`manifest_path`), "
        "relations and partial-parse state warm from one untimed build. One run per arm, all arms in "
        "one run; wall = the DAG run's start to end (REST API).",
        "",
        f"- Command: `{command}`",
        "",
        "| arm | state | wall (s) | tasks | median task wall (s) | load avg before → after |",
        "|---|---|---|---|---|---|",
    ]
    for arm, label in LABELS.items():
        figures = arms.get(arm)
        if figures is None:
            continue
        if "error" in figures:
            lines.append(f"| {label} | **did not run**: {_cell(figures['error'])} | — | — | — | — |")
            continue
        load = f"{figures['load_before'][0]:.1f} → {figures['load_after'][0]:.1f}"
        lines.append(
            f"| {label} | {figures['state']} | {figures['wall_s']:.1f} | {figures['tasks']} | "
            f"{figures['task_wall_median_s']} | {load} |"
        )
    lines += ["", "| ratio (wall) | measured | goal |", "|---|---|---|"]
    for ours, anchor, goal in RATIOS:
        r = _ratio(arms, ours, anchor)
        lines.append(f"| {ours} ÷ {anchor} | {'—' if r is None else f'{r:.2f}x'} | "
                     f"{'—' if goal is None else f'≤ {goal}x'} |")  # fmt: skip
    latency = arms.get("single_build", {}).get("latency")
    if latency and "error" not in latency:
        lines += [
            "",
            "**`single_build` latency** — each node task's end minus the later of dbt's `completed_at` for "
            "its node (and its tests, from the producer's `run_results.json`) and its last upstream task's "
            f"end: median {latency['median_s']} s, p90 {latency['p90_s']} s, max {latency['max_s']} s over "
            f"{latency['nodes']} node tasks (goal ≤ 5 s median, ≤ 15 s max); for "
            f"{latency['bound_by_upstream_end']} of them the upstream task ended after dbt finished the "
            "node.",
        ]
    overhead = arms.get("per_node", {}).get("overhead")
    if overhead and "error" not in overhead:
        lines += [
            "",
            f"**`per_node` overhead per task** (median over {overhead['tasks']} tasks): wall "
            f"{overhead['wall_median_s']} s, of which dbt's own node timing (`execution_time` of the node "
            f"and its tests) {overhead['dbt_nodes_median_s']} s: overhead {overhead['overhead_median_s']} s; "
            f"queued → running {overhead.get('queued_to_start_median_s', '—')} s before that.",
            "",
            "| phase (median s, from task log timestamps) | ours per_node | cosmos local |",
            "|---|---|---|",
        ]
        ours_phases = arms.get("per_node", {}).get("log_phases", {})
        cosmos_phases = arms.get("cosmos_local", {}).get("log_phases", {})
        for key, label in PHASES:
            lines.append(f"| {label} | {ours_phases.get(key, '—')} | {cosmos_phases.get(key, '—')} |")
        imports = section.get("imports", {})
        if imports and "error" not in imports:
            lines += [
                "",
                "Measured apart, in a fresh process of the bench venv (median of 3, same load): import "
                f"`airflow.sdk` {imports['airflow_sdk']} s, `DagBag` parse of the per_node DAG file "
                f"{imports['dagbag_parse_per_node_dag']} s, import dbt + the postgres adapter "
                f"{imports['dbt_and_postgres_adapter']} s.",
            ]
    return "\n".join(lines) + "\n"


def behind(section: dict[str, Any]) -> list[str]:
    """Each goal of the section that the run missed (or could not measure)."""
    arms = section.get("arms", {})
    found = []
    for ours, anchor, goal in RATIOS:
        if goal is None:
            continue
        r = _ratio(arms, ours, anchor)
        if r is None:
            found.append(f"task groups on a deployment: {ours} ÷ {anchor} not measured (an arm failed)")
        elif r > goal:
            found.append(
                f"task groups on a deployment: {ours} {r:.2f}x the wall time of {anchor} (goal ≤ {goal}x)"
            )
    latency = arms.get("single_build", {}).get("latency") or {}
    for key, goal in LATENCY_GOALS.items():
        value = latency.get(key)
        if value is not None and value > goal:
            found.append(f"single_build latency {key[:-2]} {value} s (goal ≤ {goal:.0f} s)")
    return found


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:200]


#: DAG-file parse goal: ours ÷ cosmos (wall, caches warm) at most this, at this many models.
PARSE_GOAL = (1000, 0.25)
PARSE_ARMS = (
    ("ours", "ours: DbtTaskGroup, caches warm"),
    ("ours_cold", "ours, render cache emptied (first parse of a new manifest)"),
    ("floor", "floor: one EmptyOperator per node, edges with >>"),
    ("cosmos", "cosmos DbtTaskGroup, LoadMode.DBT_MANIFEST"),
)


def _parse_ratio(arms: dict[str, Any], arm: str, key: str) -> float | None:
    ours, cosmos = arms.get(arm, {}).get(key), arms.get("cosmos", {}).get(key)
    return ours / cosmos if ours and cosmos else None


def render_parse_section(section: dict[str, Any]) -> str:
    """Median wall and CPU seconds of a ``DagBag`` parse per arm and size, with ratios to cosmos."""
    lines = [
        "## Task-group parse",
        "",
        "DAG-file parse time of a generated dbt project rendered as tasks (`per_node`, no selection,",
        "`manifest_path` given), each parse a `DagBag` in a fresh process after Airflow is imported;",
        f"median of {section['repeats']} parses after one warm-up parse; CPU seconds are the child's over",
        "the same span (steadier than wall on a shared machine); peak RSS is the child's `ru_maxrss`.",
        f"Command: `{section['command']}` (benchmarks/task_group_parse.py); load average "
        f"{section['load_average'][0]} at start, {section['load_average'][1]} at end.",
        "",
        "| models | arm | tasks | wall s | CPU s | peak RSS MiB | ÷ cosmos (wall) | ÷ cosmos (CPU) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, arms in section["sizes"].items():
        for arm, label in PARSE_ARMS:
            r = arms.get(arm, {})
            if "seconds" not in r:
                lines.append(f"| {int(size):,} | {label} | — | — | — | — | {r.get('error', 'not run')} | |")
                continue
            wall, cpu = _parse_ratio(arms, arm, "seconds"), _parse_ratio(arms, arm, "cpu_seconds")
            lines.append(
                f"| {int(size):,} | {label} | {r['tasks']:,} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | "
                f"{r['peak_rss_mib']} | {_fmt_ratio(wall, arm)} | {_fmt_ratio(cpu, arm)} |"
            )
    size, goal = PARSE_GOAL
    lines += ["", f"Goal: ours ÷ cosmos ≤ {goal}x at {size:,} models, caches warm.", ""]
    return "\n".join(lines)


def _fmt_ratio(value: float | None, arm: str) -> str:
    return "—" if arm == "cosmos" or value is None else f"{value:.2f}x"


def parse_behind(section: dict[str, Any]) -> list[str]:
    """The parse goal, when the run missed it."""
    size, goal = PARSE_GOAL
    arms = section.get("sizes", {}).get(str(size))
    if arms is None:
        return []
    r = _parse_ratio(arms, "ours", "seconds")
    if r is None:
        return [f"task-group parse at {size:,} models: not measured ({arms.get('ours', {}).get('error')})"]
    return [] if r <= goal else [f"task-group parse at {size:,} models: {r:.2f}x cosmos (target ≤ {goal}x)"]
