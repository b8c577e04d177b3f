"""A separate process that builds the example project, as one Airflow task would.

Usage: python dbt_worker.py PROJECT_DIR DUCKDB_FILE ARTIFACTS_DIR CACHE_DIR
Prints the build summary as JSON on stdout; exits 1 if the build failed. Like Airflow's task
runner, it ends with ``os._exit``, which skips interpreter finalisation: anything dbt left for the
garbage collector would then show up as a "leaked semaphore" warning.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from airflow_dbt_provider.core import DbtRunner


def main(project_dir: str, duckdb_file: str, artifacts_dir: str, cache_dir: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    with DbtRunner(
        project_dir,
        env={"JAFFLE_SHOP_DUCKDB_PATH": duckdb_file},
        cache_dir=cache_dir,
        install_deps=True,
        artifacts_dir=artifacts_dir,
    ) as runner:
        summary = runner.invoke(["build"]).summary()
    print(json.dumps(summary))
    return 0 if summary["success"] else 1


if __name__ == "__main__":
    code = main(*sys.argv[1:5])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
