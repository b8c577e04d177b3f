"""DAG-file parse time of a dbt project rendered as tasks: our DbtTaskGroup vs cosmos vs a floor.

For each generated project (``benchmarks/dbt_project.py``, N models) the manifest is written once
by ``dbt parse``; then three DAG files are parsed, each in a fresh process after Airflow is
imported (what the DAG processor pays per parse), caches warm, no selection:

* ``ours``: ``DbtTaskGroup(project_dir, manifest_path=...)`` (``per_node``), in ``.venv``;
* ``ours_cold``: the same with its render cache emptied before each parse (the first parse of a
  new manifest: it is parsed instead of the cached graph read);
* ``cosmos``: cosmos ``DbtTaskGroup`` with ``LoadMode.DBT_MANIFEST``, in ``.bench/venv``;
* ``floor``: one ``EmptyOperator`` per model and seed, with the manifest's edges, built from the
  same manifest.json in a plain loop, in ``.venv``.

Each figure is the median of ``repeats`` parses (``DagBag`` over the one file), as wall seconds
and as the child's CPU seconds over the same span (steadier on a shared machine); peak RSS is the
child's ``ru_maxrss``. Run: ``python -m benchmarks.task_group_parse --sizes 100,1000,5000``.
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
from pathlib import Path
from typing import Any

from benchmarks.dbt_project import generate_project
from benchmarks.paths import BENCH_VENV, PROJECT_VENV, PROJECTS_DIR, WORK_DIR

#: Parses a DAG file with a DagBag after Airflow is imported; prints seconds, tasks and peak RSS.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import airflow  # noqa: F401  (imported before timing: the DAG processor has it already)
    from airflow.dag_processing.dagbag import DagBag
    started, cpu = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not bag.import_errors, bag.import_errors
    (dag,) = bag.dags.values()
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "tasks": len(dag.tasks),
                      "dbt_imported": "dbt" in sys.modules,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)

_OURS = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_dbt_provider.task_groups.dbt import DbtTaskGroup
with DAG("bench_ours", schedule=None, start_date=datetime(2026, 1, 1)):
    DbtTaskGroup(group_id="dbt", project_dir={project!r}, manifest_path={manifest!r},
                 profiles_dir={profiles!r}, cache_dir={cache!r})
"""

_COSMOS = """
from datetime import datetime
from airflow.sdk import DAG
from cosmos import DbtTaskGroup, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import LoadMode
with DAG("bench_cosmos", schedule=None, start_date=datetime(2026, 1, 1)):
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig({project!r}, manifest_path={manifest!r}),
        profile_config=ProfileConfig(profile_name="bench", target_name="dev",
                                     profiles_yml_filepath={profiles!r} + "/profiles.yml"),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    )
"""

_FLOOR = """
import json
from datetime import datetime
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
with DAG("bench_floor", schedule=None, start_date=datetime(2026, 1, 1)):
    nodes = json.load(open({manifest!r}))["nodes"]
    tasks = {{uid: EmptyOperator(task_id=n["name"]) for uid, n in nodes.items()
              if n["resource_type"] in ("model", "seed")}}
    for uid, task in tasks.items():
        for parent in nodes[uid].get("depends_on", {{}}).get("nodes", []):
            if parent in tasks:
                tasks[parent] >> task
"""


def _manifest(project: Path, profiles: Path) -> Path:
    target = project / "target" / "manifest.json"
    if not target.is_file():
        subprocess.run(
            [
                str(PROJECT_VENV / "bin" / "dbt"),
                "parse",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(profiles),
            ],
            check=True,
            capture_output=True,
            env={"DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin"},
        )
    return target


def _parse(
    python: Path, dag_file: Path, repeats: int, env: dict[str, str], cold: Path | None = None
) -> dict[str, Any]:
    runs = []
    for _ in range(repeats + 1):  # the first parse warms the OS page cache and our render cache
        if cold is not None:
            shutil.rmtree(cold, ignore_errors=True)
        out = subprocess.run(
            [str(python), "-c", _CHILD, str(dag_file)], capture_output=True, text=True, env=env, check=False
        )
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs = runs[1:]
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "tasks": runs[0]["tasks"],
        "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
        "dbt_imported": runs[0]["dbt_imported"],
    }


def measure(sizes: list[int], repeats: int) -> dict[int, dict[str, Any]]:
    """Median parse seconds, task count and peak RSS per arm and size."""
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        bench = generate_project(PROJECTS_DIR, n)
        manifest = _manifest(bench.project_dir, bench.profiles_dir)
        work = WORK_DIR / "task_group_parse" / str(n)
        args = {
            "project": str(bench.project_dir),
            "manifest": str(manifest),
            "profiles": str(bench.profiles_dir),
        }
        arms = {
            "ours": (_OURS, PROJECT_VENV),
            "ours_cold": (_OURS, PROJECT_VENV),
            "floor": (_FLOOR, PROJECT_VENV),
            "cosmos": (_COSMOS, BENCH_VENV),
        }
        results[n] = {}
        for arm, (template, venv) in arms.items():
            folder = work / arm
            folder.mkdir(parents=True, exist_ok=True)
            dag_file = folder / f"bench_{arm}.py"
            cache = work / f"cache-{arm}"
            dag_file.write_text(template.format(**{**args, "cache": str(cache)}))
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
                "AIRFLOW_HOME": str(work / "airflow-home"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__COSMOS__CACHE_DIR": str(work / "cosmos-cache"),
                "DO_NOT_TRACK": "1",
            }
            if not (venv / "bin" / "python").is_file():
                results[n][arm] = {"error": f"{venv} is missing (make bench creates it)"}
                continue
            cold = cache if arm == "ours_cold" else None
            results[n][arm] = _parse(venv / "bin" / "python", dag_file, repeats, env, cold)
            print(n, arm, json.dumps(results[n][arm]), flush=True)
    return results


def run_task_group_parse_benchmark(*, sizes: list[int], repeats: int, log: Any = print) -> dict[str, Any]:
    """The ``task_group_parse`` section of ``make bench``'s results (keys are JSON strings)."""
    load_start = os.getloadavg()[0]
    log(f"task-group parse: {sizes} models, {repeats} parses per arm")
    measured = measure(sizes, repeats)
    return {
        "command": f"python -m benchmarks.task_group_parse --sizes {','.join(map(str, sizes))} "
        f"--repeats {repeats}",
        "repeats": repeats,
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "sizes": {str(n): arms for n, arms in measured.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    results = measure([int(s) for s in args.sizes.split(",")], args.repeats)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for n, arms in results.items():
        line = [f"{n} models:"]
        for arm in ("ours", "ours_cold", "floor", "cosmos"):
            r = arms.get(arm, {})
            if "seconds" in r:
                line.append(
                    f"{arm} {r['seconds']:.3f} s ({r['cpu_seconds']:.3f} CPU, {r['peak_rss_mib']} MiB)"
                )
        cosmos = arms.get("cosmos", {})
        for arm in ("ours", "ours_cold", "floor"):
            r = arms.get(arm, {})
            if "seconds" in r and "seconds" in cosmos:
                line.append(
                    f"{arm}/cosmos {r['seconds'] / cosmos['seconds']:.2f}x wall, "
                    f"{r['cpu_seconds'] / cosmos['cpu_seconds']:.2f}x CPU"
                )
        print(line[0], "; ".join(line[1:]))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
