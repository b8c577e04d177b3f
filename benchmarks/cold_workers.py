"""Cold workers: a ``dbt run -s <model>`` task whose project comes from S3, on a machine that never
ran it, with and without the parse cache on object storage.

    python -m benchmarks.cold_workers [--runs 3] [--models 500]

The project (the generated N-model project) is on moto's S3 server on loopback
(``tests/support/s3_server.py``, a process of its own) in every arm, reached through an Airflow
``aws`` connection whose ``endpoint_url`` points there. Every sample is a fresh Python process
that imports Airflow and dbt and then runs ``DbtRunOperator(project_dir="s3://…",
select=<one leaf model>).execute()`` — the task's whole cost after imports: fetching the project,
parsing, running the model. Arms:

* ``cache_off``: an empty cache root, no parse cache on object storage → dbt parses in full;
* ``object_storage``: an empty cache root (a cold worker: the project is downloaded too), with
  ``[dbt_provider] parse_cache_url`` holding the entry an untimed first task published;
* ``warm_local``: the cache root kept from the previous task (project and parse file local).

Each sample also times one more ``fetch_project`` of the (now unchanged) project in the same
process: what learning that the project did not change costs once s3fs is imported and its client
exists (one listing). The cold arms' project download, and ``warm_local``'s own check of its
unchanged project — the first in its fresh process, so with those imports and the client's
creation, as every Airflow task pays it — are read from the task log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.dbt_project import generate_project
from benchmarks.paths import PROJECTS_DIR, REPO
from benchmarks.stats import Summary, ratio, summarize

ARMS = ("cache_off", "object_storage", "warm_local")
_SAMPLE = """
import json, logging, sys, time
from airflow_dbt_provider.core.isolation import import_dbt
from airflow_dbt_provider.operators.dbt import DbtRunOperator
from airflow_dbt_provider.object_storage.projects import fetch_project
from airflow_dbt_provider.core.parse_cache import default_cache_dir
import_dbt()
url, profiles_dir, select = sys.argv[1:4]

class TI:
    def xcom_push(self, key, value):
        pass

operator = DbtRunOperator(task_id="dbt", project_dir=url, profiles_dir=profiles_dir, select=select)
started = time.perf_counter()
summary = operator.execute(context={"ti": TI()})
task = time.perf_counter() - started
quiet = logging.getLogger("bench")  # this fetch must not be taken for the task's own (see _UNCHANGED)
quiet.propagate = False
started = time.perf_counter()
fetch_project(url, default_cache_dir(), quiet)
unchanged = time.perf_counter() - started
print(json.dumps({"task_s": task, "unchanged_fetch_s": unchanged, "success": summary["success"]}))
"""
_FULL_PARSE = "Unable to do partial parsing"
_DOWNLOADED = re.compile(r"fetched version \w+ \(\d+ files, [\d.]+ MB\) in ([\d.]+)s")
#: The task's own check of an unchanged project: the first in its process (imports, S3 client).
_UNCHANGED = re.compile(r"is unchanged \(version \w+, \d+ files, checked in ([\d.]+)s\)")


def _sample(url: str, profiles_dir: Path, select: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _SAMPLE, url, str(profiles_dir), select],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    lines = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode != 0 or not lines.startswith("{"):
        raise RuntimeError(f"the sample process failed:\n{(done.stdout + done.stderr)[-3000:]}")
    measured = json.loads(lines)
    if not measured["success"]:
        raise RuntimeError("dbt run failed in a sample")
    output = done.stdout + done.stderr
    measured["full_parse"] = _FULL_PARSE in output
    downloaded = _DOWNLOADED.search(output)
    measured["project_download_s"] = float(downloaded.group(1)) if downloaded else 0.0
    unchanged = _UNCHANGED.search(output)  # the sample's own second fetch prints to no log
    measured["in_task_unchanged_fetch_s"] = float(unchanged.group(1)) if unchanged else None
    return dict(measured)


def _prepare_warehouse(project_dir: Path, profiles_dir: Path) -> None:
    """Build the whole project once, untimed, so ``run -s <leaf>`` finds its upstream views."""
    dbt = Path(sys.executable).parent / "dbt"
    done = subprocess.run(
        [str(dbt), "build", "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)],
        capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, "DO_NOT_TRACK": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"preparing {project_dir} failed:\n{done.stdout[-3000:]}")
    for name in ("target", "logs"):
        shutil.rmtree(project_dir / name, ignore_errors=True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_cold_worker_benchmark(models: int, runs: int, log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Median task times of the three arms over ``runs`` fresh processes each."""
    sys.path.insert(0, str(REPO / "tests"))  # the loopback S3 server the tests use
    from support.s3_server import S3Server

    project = generate_project(PROJECTS_DIR, models)
    _prepare_warehouse(project.project_dir, project.profiles_dir)
    with tempfile.TemporaryDirectory(prefix="bench-cold-workers-") as tmp, S3Server() as s3:
        bucket = s3.new_bucket()
        staged = Path(tmp) / "upload"
        shutil.copytree(project.project_dir, staged, ignore=shutil.ignore_patterns("profiles", "*.duckdb*"))
        bucket.upload(staged, f"projects/{project.project_dir.name}")
        url = bucket.url(f"projects/{project.project_dir.name}")
        cache_root = Path(tmp) / "cache-root"  # the same path on every "worker", as required
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__DBT_PROVIDER", "AIRFLOW_DBT"))
        }
        name, value = bucket.connection_env()
        env.update({name: value, "AIRFLOW_DBT_PROVIDER_CACHE_DIR": str(cache_root), "DO_NOT_TRACK": "1"})
        with_cache = {**env, "AIRFLOW__DBT_PROVIDER__PARSE_CACHE_URL": bucket.url("parse-cache")}

        def sample(arm_env: dict[str, str], cold: bool) -> dict[str, Any]:
            if cold:
                shutil.rmtree(cache_root, ignore_errors=True)
            return _sample(url, project.profiles_dir, project.one_model, arm_env)

        log(f"cold workers: {models} models, untimed first task publishes the parse cache")
        sample(with_cache, cold=True)
        samples: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for i in range(runs):  # interleaved, so a noisy moment hurts every arm alike
            samples["cache_off"].append(sample(env, cold=True))
            samples["object_storage"].append(sample(with_cache, cold=True))
            samples["warm_local"].append(sample(env, cold=False))
            log(f"cold workers: round {i + 1}/{runs} done")
    return _summary(models, runs, samples)


def _summary(models: int, runs: int, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm, items in samples.items():
        task: Summary | None = summarize([s["task_s"] for s in items])
        fetch: Summary | None = summarize([s["unchanged_fetch_s"] for s in items])
        checks = [s["in_task_unchanged_fetch_s"] for s in items if s.get("in_task_unchanged_fetch_s")]
        in_task: Summary | None = summarize(checks)
        arms[arm] = {
            "task_s": task,
            "unchanged_fetch_s": fetch,
            "unchanged_fetch_share": ratio(fetch, task),
            "project_download_s": summarize([s["project_download_s"] for s in items]),
            "in_task_unchanged_fetch_s": in_task,
            "in_task_unchanged_fetch_share": ratio(in_task, task),
            "full_parses": sum(s["full_parse"] for s in items),
            "samples": items,
        }
    return {
        "models": models,
        "runs": runs,
        "arms": arms,
        "speedup_object_storage_vs_off": ratio(arms["cache_off"]["task_s"], arms["object_storage"]["task_s"]),
        "speedup_warm_local_vs_off": ratio(arms["cache_off"]["task_s"], arms["warm_local"]["task_s"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_workers", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per arm (default 3)")
    parser.add_argument("--models", type=int, default=500, help="models in the project (default 500)")
    args = parser.parse_args(argv)
    print(json.dumps(run_cold_worker_benchmark(args.models, args.runs), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
