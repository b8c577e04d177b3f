"""Where the benchmarks keep their state: everything generated lives under ``.bench/``."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Overridable so tests can work in a temporary directory without touching the repo's ``.bench/``.
BENCH_DIR = Path(os.environ.get("ADP_BENCH_DIR", REPO / ".bench")).resolve()
BENCH_VENV = BENCH_DIR / "venv"
PROJECTS_DIR = BENCH_DIR / "projects"
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = BENCH_DIR / "work"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
PLOT_PNG = REPO / "docs" / "triggerer_scale.png"
PROJECT_VENV = REPO / ".venv"
UV = REPO / ".tools" / "bin" / "uv"
