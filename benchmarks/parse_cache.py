"""Cold vs cached parse: what the partial-parse cache saves each Airflow task.

    python -m benchmarks.parse_cache [--runs 5] [--project DIR]

Every sample is a fresh Python process, as every Airflow task is. It imports dbt first (the same
cost either way), then times ``DbtRunner.parse()``: the first parse of the process, everything a
task pays before dbt runs a node. *Cold* samples start with no cached ``partial_parse.msgpack``;
*cached* samples find the one the previous sample left. The project's packages are installed
once beforehand, so neither arm pays for ``dbt deps``. Prints the medians and the saving as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import airflow_dbt_provider.testing

DEFAULT_PROJECT = Path(airflow_dbt_provider.testing.__file__).parent / "jaffle_shop"
_SAMPLE = """
import json, sys, time
from airflow_dbt_provider.core import DbtRunner
from airflow_dbt_provider.core.isolation import import_dbt
import_dbt()
with DbtRunner(sys.argv[1], cache_dir=sys.argv[2], env={"JAFFLE_SHOP_DUCKDB_PATH": sys.argv[3]},
               install_deps=True) as runner:
    started = time.perf_counter()
    result = runner.parse()
    print(json.dumps({"seconds": time.perf_counter() - started, "success": result.success}))
"""


def sample(project: Path, cache_dir: Path, duckdb_file: Path) -> float:
    """Seconds a fresh process spends in its first ``parse()`` with ``cache_dir`` as the cache."""
    done = subprocess.run(
        [sys.executable, "-c", _SAMPLE, str(project), str(cache_dir), str(duckdb_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "DO_NOT_TRACK": "1"},
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the sample process failed:\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if not measured["success"]:
        raise RuntimeError(f"dbt parse failed:\n{done.stderr[-3000:]}")
    return float(measured["seconds"])


def run(project: Path, runs: int) -> dict[str, object]:
    """Median cold and cached first-parse times over ``runs`` fresh processes each."""
    with tempfile.TemporaryDirectory(prefix="bench-parse-cache-") as tmp:
        cache, duckdb_file = Path(tmp) / "cache", Path(tmp) / "bench.duckdb"
        sample(project, cache, duckdb_file)  # installs the packages (a mirror in the cache)
        cold = []
        for _ in range(runs):
            shutil.rmtree(cache / "partial-parse", ignore_errors=True)
            cold.append(sample(project, cache, duckdb_file))
        cached = [sample(project, cache, duckdb_file) for _ in range(runs)]
    cold_median, cached_median = statistics.median(cold), statistics.median(cached)
    return {
        "project": str(project),
        "runs": runs,
        "cold_parse_seconds": [round(s, 3) for s in cold],
        "cached_parse_seconds": [round(s, 3) for s in cached],
        "cold_median": round(cold_median, 3),
        "cached_median": round(cached_median, 3),
        "saved_per_task_seconds": round(cold_median - cached_median, 3),
        "speedup": round(cold_median / cached_median, 2) if cached_median else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_cache", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per arm (default 5)")
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help="dbt project directory")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.project.resolve(), args.runs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
