"""A dbt project as Airflow tasks, end to end on a real deployment: our DbtTaskGroup vs cosmos vs a floor.

One LocalExecutor deployment (``tests/support/airflow_deployment.py``: api-server, scheduler,
dag-processor, triggerer; PostgreSQL metadata DB) and a PostgreSQL warehouse on the same server
(DuckDB takes one writer process, so parallel node tasks need a server). The project is the
generated N-model tree (``benchmarks/dbt_project.py``) with a PostgreSQL profile. Every arm runs the
same project with the same parallelism: ``[core] parallelism`` = dbt ``threads`` = ``PARALLELISM``.

Arms (one DAG each, one run each, in this order):

* ``floor``: one ``DbtBuildOperator`` building the project + the same graph of ``EmptyOperator``s
  scheduled beside it (Airflow's scheduler ends those itself, without a worker);
* ``single_build``: our ``DbtTaskGroup(mode="single_build")``;
* ``per_node``: our ``DbtTaskGroup(mode="per_node")``;
* ``cosmos_local``: cosmos ``DbtTaskGroup``, ``ExecutionMode.LOCAL`` +
  ``InvocationMode.DBT_RUNNER``, ``TestBehavior.BUILD`` (one ``dbt build`` task per node, as ours);
* ``cosmos_watcher``: cosmos ``ExecutionMode.WATCHER`` (one producer build, consumer sensors).

Before the arms one untimed ``dbt build`` creates every relation and the manifest all arms render
from (``manifest_path``), so no arm pays a first parse at DAG-parse time and every arm replaces
existing views. Figures come from the REST API (dag run and task instance dates) and from dbt's
``run_results.json`` that our tasks push to XCom.

The benchmark runs in the bench venv's Python (cosmos is there, never in ``.venv``):
``python -m benchmarks.task_group_deploy`` from ``.venv`` starts it; ``--models 10`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.dbt_project import PROFILE, TARGET, generate_project
from benchmarks.paths import BENCH_VENV, PROJECTS_DIR, REPO, WORK_DIR

PARALLELISM = 4
ARMS = ("floor", "single_build", "per_node", "cosmos_local", "cosmos_watcher")
RUN_TIMEOUT_S = 1800.0
WAREHOUSE_DB = "warehouse_bench"
SCHEMA = "bench"

_HEAD = """
import json
from datetime import datetime
from airflow.sdk import DAG
PROJECT, MANIFEST, PROFILES = {project!r}, {manifest!r}, {profiles!r}
"""
_DAGS = {
    "floor": """
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_dbt_provider.operators.dbt import DbtBuildOperator
with DAG("bench_floor", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DbtBuildOperator(task_id="dbt_build", project_dir=PROJECT, profiles_dir=PROFILES,
                     push_artifacts=["run_results.json"], priority_weight=1_000_000, weight_rule="absolute")
    nodes = json.load(open(MANIFEST))["nodes"]
    tasks = {{uid: EmptyOperator(task_id=n["name"]) for uid, n in nodes.items()
              if n["resource_type"] in ("model", "seed")}}
    for uid, task in tasks.items():
        for parent in nodes[uid]["depends_on"].get("nodes", []):
            if parent in tasks:
                tasks[parent] >> task
""",
    "single_build": """
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup
with DAG("bench_single_build", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DbtTaskGroup(group_id="dbt", project_dir=PROJECT, manifest_path=MANIFEST, profiles_dir=PROFILES,
                 mode="single_build", operator_args={{"push_artifacts": ["run_results.json"]}})
""",
    "per_node": """
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup
with DAG("bench_per_node", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DbtTaskGroup(group_id="dbt", project_dir=PROJECT, manifest_path=MANIFEST, profiles_dir=PROFILES,
                 mode="per_node", operator_args={{"push_artifacts": ["run_results.json"]}})
""",
    "cosmos_local": """
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
with DAG("bench_cosmos_local", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(PROJECT, manifest_path=MANIFEST),
        profile_config=ProfileConfig(profile_name="bench", target_name="dev",
                                     profiles_yml_filepath=PROFILES + "/profiles.yml"),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        operator_args={{"install_deps": False}},
    )
""",
    "cosmos_watcher": """
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode
with DAG("bench_cosmos_watcher", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(PROJECT, manifest_path=MANIFEST),
        profile_config=ProfileConfig(profile_name="bench", target_name="dev",
                                     profiles_yml_filepath=PROFILES + "/profiles.yml"),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),  # BUILD: not in WATCHER
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        operator_args={{"install_deps": False}},
    )
""",
}


# -- parent (.venv): start the child in the bench venv --------------------------------------------


def run_deploy_benchmark(
    *, python: Path, n_models: int = 100, arms: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the benchmark in ``python`` (the bench venv) and return its figures."""
    out = WORK_DIR / "tg_deploy" / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    env.pop("VIRTUAL_ENV", None)
    argv = [str(python), "-m", "benchmarks.task_group_deploy", "--child", "--models", str(n_models)]
    argv += ["--arms", ",".join(arms or ARMS), "--out", str(out)]
    log(f"task-group deployment: {n_models} models, arms {arms or list(ARMS)}")
    subprocess.run(argv, cwd=REPO, env=env, check=True, timeout=3600)
    return dict(json.loads(out.read_text()))


# -- child (bench venv): deployment, runs, figures ------------------------------------------------


def _child(n_models: int, arms: list[str], out: Path) -> None:
    from support.airflow_deployment import AirflowDeployment
    from support.postgres import PostgresServer

    root = WORK_DIR / "tg_deploy"
    shutil.rmtree(root / "run", ignore_errors=True)
    run_root = root / "run"
    result: dict[str, Any] = {"n_models": n_models, "parallelism": PARALLELISM, "arms": {}}
    started = time.time()
    with PostgresServer() as pg:
        pg.create_database(WAREHOUSE_DB)
        pg.execute(f"create schema {SCHEMA}", dbname=WAREHOUSE_DB)
        project, profiles, manifest = _prepare_project(run_root, n_models, pg)
        dags = run_root / "dags"
        dags.mkdir(parents=True)
        for arm in arms:
            (dags / f"bench_{arm}.py").write_text(
                _HEAD.format(project=str(project), manifest=str(manifest), profiles=str(profiles))
                + _DAGS[arm].format()
            )
        result["imports"] = _import_times(dags / "bench_per_node.py")
        env = {
            "DBT_ENV_SECRET_BENCH_PG_PASSWORD": pg.password,
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        }
        deployment = AirflowDeployment(
            name="bench-task-group",
            home=run_root / "airflow",
            dag_folders=[dags],
            db_url=pg.uri(pg.create_database("airflow_bench"), scheme="postgresql+psycopg2"),
            parallelism=PARALLELISM,
            env=env,
        )
        with deployment:
            api = deployment.api()
            for arm in arms:
                load = os.getloadavg()
                dag_id = f"bench_{arm}"
                try:
                    api.wait_for_dag(dag_id, timeout=300, grace=60)
                    figures = _run_arm(api, dag_id, manifest)
                except Exception as exc:  # one arm failing must not lose the others
                    figures = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                figures["load_before"] = [round(x, 2) for x in load]
                figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
                result["arms"][arm] = figures
                print(f"[tg-deploy] {arm}: {json.dumps({k: v for k, v in figures.items() if k != 'tasks'})}")
    result["duration_s"] = round(time.time() - started, 1)
    out.write_text(json.dumps(result, indent=1))


def _prepare_project(root: Path, n_models: int, pg: Any) -> tuple[Path, Path, Path]:
    """A copy of the generated project, a PostgreSQL profile, and one untimed build's manifest."""
    source = generate_project(PROJECTS_DIR, n_models).project_dir
    project = root / "project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("target", "logs", "profiles", "*.duckdb"))
    profiles = root / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        textwrap.dedent(
            f"""
            {PROFILE}:
              target: {TARGET}
              outputs:
                {TARGET}:
                  type: postgres
                  host: {pg.host}
                  port: {pg.port}
                  user: {pg.user}
                  password: "{{{{ env_var('DBT_ENV_SECRET_BENCH_PG_PASSWORD') }}}}"
                  dbname: {WAREHOUSE_DB}
                  schema: {SCHEMA}
                  threads: {PARALLELISM}
            """
        )
    )
    env = {**os.environ, "DBT_ENV_SECRET_BENCH_PG_PASSWORD": pg.password, "DO_NOT_TRACK": "1"}
    dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
    subprocess.run(
        [*dbt, "build", "--project-dir", str(project), "--profiles-dir", str(profiles), "--quiet"],
        env=env, cwd=project, check=True, timeout=900,
    )  # fmt: skip
    manifest = root / "manifest" / "manifest.json"
    manifest.parent.mkdir()
    shutil.copy(project / "target" / "manifest.json", manifest)
    return project, profiles, manifest


_IMPORTS_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # noqa: F401
t1 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t2 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
t3 = time.perf_counter()
import dbt.cli.main, dbt.adapters.postgres  # noqa: F401,E401
t4 = time.perf_counter()
print(json.dumps({"airflow_sdk": t1 - t0, "dagbag_parse_per_node_dag": t3 - t2,
                  "dbt_and_postgres_adapter": t4 - t3, "errors": bool(bag.import_errors)}))
"""


def _import_times(dag_file: Path) -> dict[str, Any]:
    """Where a node task's start goes, measured in a fresh process: imports and the DAG-file parse."""
    runs = []
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", _IMPORTS_SNIPPET, str(dag_file)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0] if k != "errors"}


def _at(text: str) -> float:
    """A timestamp the caller knows is set (a finished run or task, dbt's artifacts and log events)."""
    return datetime.fromisoformat(text).timestamp()


def _task_instances(api: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    tis: list[dict[str, Any]] = []
    while True:
        page = api.get(path, limit=100, offset=len(tis))["task_instances"]
        tis += page
        if len(page) < 100:
            return tis


def _run_arm(api: Any, dag_id: str, manifest_path: Path) -> dict[str, Any]:
    run_id = api.trigger_dag_run(dag_id)
    try:
        run = api.wait_for_dag_run(dag_id, run_id, timeout=RUN_TIMEOUT_S)
    finally:
        api.set_paused(dag_id, True)
    tis = _task_instances(api, dag_id, run_id)
    wall = _at(run["end_date"]) - _at(run["start_date"])
    ran = [_at(t["end_date"]) - _at(t["start_date"]) for t in tis if t["start_date"] and t["end_date"]]
    figures: dict[str, Any] = {
        "state": run["state"],
        "wall_s": round(wall, 2),
        "tasks": len(tis),
        "task_states": _count(t["state"] for t in tis),
        "task_wall_median_s": round(statistics.median(ran), 2) if ran else None,
        "tries_over_1": sum(1 for t in tis if (t["try_number"] or 0) > 1),
    }
    manifest = json.loads(manifest_path.read_text())
    if dag_id == "bench_single_build":
        figures["latency"] = _latency(api, dag_id, run_id, tis, manifest)
    if dag_id == "bench_per_node":
        figures["overhead"] = _overhead(api, dag_id, run_id, tis)
    if dag_id in ("bench_per_node", "bench_cosmos_local"):
        figures["log_phases"] = _log_phases(api, dag_id, run_id, tis)
    if dag_id in ("bench_floor", "bench_single_build"):
        producer = "dbt_build" if dag_id == "bench_floor" else "dbt.dbt_build"
        rr = _run_results(api, dag_id, run_id, producer)
        figures["build_elapsed_s"] = round(rr["elapsed_time"], 2) if rr else None
    return figures


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item)] = counts.get(str(item), 0) + 1
    return counts


def _run_results(api: Any, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    from airflow_dbt_provider.artifacts import decode_artifact

    try:
        return dict(decode_artifact(api.xcom(dag_id, run_id, task_id, key="run_results")))
    except Exception:
        return None


def _completed(result: dict[str, Any]) -> float | None:
    ends = [_at(t["completed_at"]) for t in result.get("timing", []) if t.get("completed_at")]
    return max(ends) if ends else None


def _latency(api: Any, dag_id: str, run_id: str, tis: list[dict[str, Any]], manifest: dict[str, Any]) -> Any:
    """Each node task's end minus the later of dbt's completed_at (node + tests) and its upstream's end."""
    rr = _run_results(api, dag_id, run_id, "dbt.dbt_build")
    if rr is None:
        return {"error": "no run_results from the producer"}
    nodes = manifest["nodes"]
    done: dict[str, float] = {}
    for result in rr["results"]:
        uid, end = result["unique_id"], _completed(result)
        parents = nodes.get(uid, {}).get("depends_on", {}).get("nodes", [])
        owner = parents[0] if uid.startswith("test.") and len(parents) == 1 else uid
        if end is not None:
            done[owner] = max(done.get(owner, 0.0), end)
    by_task = {t["task_id"]: t for t in tis}
    latencies, waits_on_upstream = [], 0
    for uid, end in done.items():
        ti = by_task.get(f"dbt.{nodes[uid]['name']}") if uid in nodes else None
        if ti is None or not ti["end_date"]:
            continue
        parents = nodes[uid]["depends_on"].get("nodes", [])
        ups = [by_task.get(f"dbt.{nodes[p]['name']}") for p in parents if p in nodes]
        up_end = max((_at(u["end_date"]) for u in ups if u and u["end_date"]), default=0.0)
        waits_on_upstream += up_end > end
        latencies.append(_at(ti["end_date"]) - max(end, up_end))
    if not latencies:
        return {"error": "no node task matched a result"}
    return {
        "nodes": len(latencies),
        "median_s": round(statistics.median(latencies), 2),
        "max_s": round(max(latencies), 2),
        "p90_s": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))], 2),
        "bound_by_upstream_end": waits_on_upstream,
    }


def _overhead(api: Any, dag_id: str, run_id: str, tis: list[dict[str, Any]]) -> Any:
    """Per node task: wall time minus dbt's node timing, split at dbt's invocation start and end."""
    rows = []
    for ti in tis:
        rr = _run_results(api, dag_id, run_id, ti["task_id"]) if ti["end_date"] else None
        if not rr or not rr.get("results"):
            continue
        start, end = _at(ti["start_date"]), _at(ti["end_date"])
        node_s = sum(float(r.get("execution_time") or 0.0) for r in rr["results"])
        generated = _at(rr["metadata"]["generated_at"])
        dbt_start = generated - rr["elapsed_time"]
        timings = [t for r in rr["results"] for t in r.get("timing", [])]
        node_starts = [_at(t["started_at"]) for t in timings if t.get("started_at")]
        first_node = min(node_starts, default=dbt_start)
        rows.append(
            {
                "queued_to_start": start - _at(ti["queued_when"]) if ti.get("queued_when") else None,
                "wall": end - start,
                "dbt_nodes": node_s,
                "overhead": end - start - node_s,
                "before_dbt": dbt_start - start,
                "dbt_startup": first_node - dbt_start,
                "after_dbt": end - generated,
            }
        )
    if not rows:
        return {"error": "no run_results from node tasks"}
    out: dict[str, Any] = {"tasks": len(rows)}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            out[f"{key}_median_s"] = round(statistics.median(values), 2)
    return out


#: Log events that mark where a node task's time goes (the first event containing each text).
_MARKS = (
    ("airflow_pre_execute", "::endgroup::"),  # task start: DAG-file parse, context
    ("to_dbt_start", "Running with dbt="),  # imports (dbt), profile, runner set-up
    ("dbt_parse", "Concurrency:"),  # adapter registration, (partial) parse, graph
    ("dbt_nodes", "Finished running"),  # the node and its tests
)


def _log_phases(api: Any, dag_id: str, run_id: str, tis: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds per phase of a node task, from its log's timestamps (start_date first)."""
    phases: dict[str, list[float]] = {name: [] for name, _ in _MARKS}
    phases["after_dbt"] = []
    for ti in tis:
        if ti["state"] != "success" or not ti["start_date"]:
            continue
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        try:
            answer = api.request("GET", path, params={"full_content": "true"},
                                 headers={"Accept": "application/json"})  # fmt: skip
            content = answer.json().get("content", [])
        except Exception:
            continue
        events = [
            (_at(i["timestamp"]), str(i.get("event", "")))
            for i in content
            if isinstance(i, dict) and i.get("timestamp")
        ]
        last = _at(ti["start_date"])
        marks = []
        for _name, text in _MARKS:
            at = next((t for t, e in events if text in e), None)
            if at is None:
                break
            marks.append(at)
        if len(marks) != len(_MARKS):
            continue
        for (name, _), at in zip(_MARKS, marks, strict=True):
            phases[name].append(at - last)
            last = at
        phases["after_dbt"].append(_at(ti["end_date"]) - last)
    counted = len(phases["after_dbt"])
    out: dict[str, Any] = {"tasks": counted}
    if counted:
        out.update({f"{k}_median_s": round(statistics.median(v), 2) for k, v in phases.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.task_group_deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(ARMS)
    if unknown:
        parser.error(f"--arms: unknown arm(s) {sorted(unknown)}; choose from {list(ARMS)}")
    if args.child:
        _child(args.models, arms, args.out)
        return 0
    result = run_deploy_benchmark(python=BENCH_VENV / "bin" / "python", n_models=args.models, arms=arms)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
