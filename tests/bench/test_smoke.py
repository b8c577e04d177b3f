"""Each benchmark once at its smallest size, end to end, so the machinery cannot rot unnoticed.

Runs ``python -m benchmarks.run --smoke`` in the project's venv (the anchors live only in
``.bench/venv``, which ``make test`` does not build, so they are reported as not run), in a
temporary bench directory; ``ADP_BENCH_PYTHON`` picks another venv. Asserts that
every arm ran and produced figures — never what the figures are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_S = 600


@pytest.mark.bench
@pytest.mark.timeout(SMOKE_TIMEOUT_S + 60)
def test_every_benchmark_runs_once(tmp_path: Path) -> None:
    python = Path(os.environ.get("ADP_BENCH_PYTHON", sys.executable))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["ADP_BENCH_DIR"] = str(tmp_path / "bench")
    out = tmp_path / "BENCHMARKS.md"
    command = [
        str(python), "-m", "benchmarks.run", "--smoke", "--python", str(python),
        "--local-arms", "ours_cold", "--commands", "run", "--trigger-sizes", "20", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    (results_file,) = (tmp_path / "bench" / "results").glob("*-smoke.json")
    results = json.loads(results_file.read_text())
    assert results["smoke"] is True
    assert results["machine"]["cpus"] >= 1

    local = results["local_dbt"]
    assert local["arms"]["ours_cold"]["available"], local["arms"]["ours_cold"]["reason"]
    (case,) = local["cases"]
    assert case["error"] is None, case["error"]
    assert case["wall_s"]["n"] == 1
    assert case["peak_rss_mb"]["median"] > 0

    triggers = results["triggers"]
    assert triggers["impls"]["ours"]["available"], triggers["impls"]["ours"]["reason"]
    ran = {impl for impl, status in triggers["impls"].items() if status["available"]}
    assert {(c["impl"], c["scenario"]) for c in triggers["cases"]} == {
        (impl, scenario) for impl in ran for scenario in ("clean", "faults")
    }
    for case in triggers["cases"]:
        assert case["error"] is None, case["error"]
        sample = case["samples"][0]
        assert sum(sample["statuses"].values()) == 20
        assert sample["calls"] >= 20
        assert sample["cpu_ms_per_poll"] > 0
    ours_clean = next(c for c in triggers["cases"] if c["impl"] == "ours" and c["scenario"] == "clean")
    assert ours_clean["samples"][0]["statuses"] == {"success": 20}

    api = {case["impl"]: case for case in results["api"]["cases"]}
    assert api["ours"]["error"] is None, api["ours"]["error"]
    sample = api["ours"]["samples"][0]
    assert sample["start"] == 1
    assert sample["artifacts"] >= 2
    assert sample["poll"] >= 1

    parse = results["task_group_parse"]
    assert "error" not in parse, parse.get("error")
    for arm in ("ours", "ours_cold", "floor"):
        figures = parse["sizes"]["100"][arm]
        assert figures["seconds"] > 0, (arm, figures)
        assert figures["tasks"] == 101, (arm, figures)

    text = out.read_text()
    assert "Smoke run" in text
    for heading in ("## Local dbt task overhead", "## Triggerer scale", "## API efficiency"):
        assert heading in text
    for heading in ("## Cold workers", "## Task-group parse"):
        assert heading in text
    assert "**Did not complete:**" not in text
