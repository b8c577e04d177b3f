"""Regenerate the dbt Cloud emulator's default-world artifacts by really running dbt.

The emulator's default jobs answer artifact requests with ``manifest.json`` and ``run_results.json``;
hand-written JSON would drift from what dbt writes, so this script runs ``dbt build`` on the example
project ``airflow_dbt_provider/testing/jaffle_shop`` twice, in a throwaway copy:

* ``success``: the project as shipped; every node passes.
* ``fail``: the singular test ``assert_order_amount_not_negative`` is inverted in the copy so it
  finds rows and fails; the node set (unique_ids) stays the same as the shipped project's.

Each run's ``manifest.json`` and ``run_results.json`` are gzipped into
``airflow_dbt_provider/testing/emulator_artifacts/<outcome>/`` with the console log of the run
(``build.log``), which becomes the emulator's step log text, and a fingerprint of the project
sources they came from. Run it after changing the example project (``tests/emulator`` fails until
you do)::

    .venv/bin/python scripts/generate_emulator_artifacts.py
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
TESTING = REPO / "airflow_dbt_provider" / "testing"
OUT = TESTING / "emulator_artifacts"
FAILING_TEST = Path("tests") / "assert_order_amount_not_negative.sql"
ARTIFACTS = ("manifest.json", "run_results.json")


def _dbt() -> str:
    """The dbt CLI beside this interpreter (the project's .venv), so the versions match the lock."""
    candidate = Path(sys.executable).parent / "dbt"
    if not candidate.exists():
        raise SystemExit(f"dbt not found at {candidate}; run this with the project's .venv/bin/python")
    return str(candidate)


def _copy_projects(workdir: Path) -> Path:
    """Copy the example project and its ``local:`` package so ``../jaffle_utils`` still resolves."""
    for name in ("jaffle_shop", "jaffle_utils"):
        shutil.copytree(TESTING / name, workdir / name, ignore=shutil.ignore_patterns("target", "logs"))
    return workdir / "jaffle_shop"


def _run_dbt(project: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [_dbt(), *args, "--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=False)


def _clean_log(text: str) -> str:
    """Drop ANSI colour codes and the temp-dir paths so the log reads like a dbt Cloud step log."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return text.strip() + "\n"


def _build(outcome: str, workdir: Path) -> None:
    project = _copy_projects(workdir)
    env = {
        **os.environ,
        "JAFFLE_SHOP_DUCKDB_PATH": str(workdir / "jaffle_shop.duckdb"),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }
    deps = _run_dbt(project, ["deps"], env)
    if deps.returncode != 0:
        raise SystemExit(f"dbt deps failed:\n{deps.stdout}\n{deps.stderr}")
    if outcome == "fail":
        test_file = project / FAILING_TEST
        test_file.write_text(test_file.read_text().replace("amount < 0", "amount >= 0"))
    build = _run_dbt(project, ["build"], env)
    expected_rc = 0 if outcome == "success" else 1
    if build.returncode != expected_rc:
        raise SystemExit(f"dbt build ({outcome}) exited {build.returncode}:\n{build.stdout}\n{build.stderr}")
    dest = OUT / outcome
    dest.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        data = json.loads((project / "target" / name).read_text())
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        # mtime=0 keeps the gzip bytes reproducible, so regenerating an unchanged project is a no-op.
        (dest / f"{name}.gz").write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    (dest / "build.log").write_text(_clean_log(build.stdout))
    print(f"{outcome}: wrote {', '.join(ARTIFACTS)} and build.log to {dest.relative_to(REPO)}")


def main() -> None:
    # Imported late: the repo root is put on sys.path above so the script runs from a checkout.
    from airflow_dbt_provider.testing.dbt_cloud_emulator.artifacts import (
        FINGERPRINT_FILE,
        project_fingerprint,
    )

    for outcome in ("success", "fail"):
        with tempfile.TemporaryDirectory(prefix=f"emulator-artifacts-{outcome}-") as tmp:
            _build(outcome, Path(tmp))
    fingerprint = project_fingerprint(TESTING / "jaffle_shop", TESTING / "jaffle_utils")
    (OUT / FINGERPRINT_FILE).write_text(fingerprint + "\n")
    print(f"source fingerprint {fingerprint[:12]}... written to {FINGERPRINT_FILE}")


if __name__ == "__main__":
    main()
