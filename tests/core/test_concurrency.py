"""Two task processes building the same project at once, each with its own DuckDB file.

The project is mounted read-only in the workers' own mount namespace when the test runs as root
(where file modes do not stop writes), else made read-only by file modes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.dbt_projects import BUILD_NODES, copy_project, set_read_only, tree_state

WORKER = Path(__file__).with_name("dbt_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _command(project_root: Path, args: list[str]) -> list[str]:
    python = [sys.executable, str(WORKER), *args]
    if os.geteuid() == 0 and shutil.which("unshare"):
        root = str(project_root)
        script = f'mount --bind "{root}" "{root}" && mount -o remount,ro,bind "{root}" && exec "$@"'
        return ["unshare", "--mount", "sh", "-c", script, "sh", *python]
    return python


def test_two_processes_build_the_same_project_at_once(tmp_path: Path) -> None:
    root = tmp_path / "project"
    project = copy_project(root)
    set_read_only(root)
    before = tree_state(root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    workers = []
    for name in ("a", "b"):
        args = [
            str(project),
            str(tmp_path / f"{name}.duckdb"),
            str(tmp_path / f"artifacts-{name}"),
            str(tmp_path / "cache"),
        ]
        workers.append(
            subprocess.Popen(
                _command(root, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    outputs = [worker.communicate(timeout=300) for worker in workers]
    set_read_only(root, read_only=False)
    assert tree_state(root) == before, "a worker wrote into the project directory"
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["success"] is True
        assert summary["nodes"] == BUILD_NODES
        assert "leaked semaphore" not in stderr
        assert "Traceback" not in stderr
        # dbt's progress lines reached the worker's log once each.
        assert stderr.count("OK created sql table model main.customers") == 1
    for name in ("a", "b"):
        run_results = json.loads((tmp_path / f"artifacts-{name}" / "run_results.json").read_text())
        assert len(run_results["results"]) == BUILD_NODES
        assert {r["status"] for r in run_results["results"]} == {"success", "pass"}
        assert (tmp_path / f"{name}.duckdb").is_file()
