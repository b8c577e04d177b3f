"""Run the benchmarks, write raw results as JSON, regenerate BENCHMARKS.md (``make bench``).

    python -m benchmarks.run            # everything, at full size (~45 min on 2 quiet cores)
    python -m benchmarks.run --smoke    # each benchmark once at its smallest size (not a result)

Results go to ``.bench/results/<UTC timestamp>.json``; ``benchmarks.render`` turns one into
BENCHMARKS.md and ``benchmarks.plot`` draws the triggerer curve. A smoke run renders to
``.bench/BENCHMARKS.smoke.md`` so it can never be mistaken for, or overwrite, real figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import venv
from benchmarks.api_efficiency import run_api_benchmark
from benchmarks.cold_workers import run_cold_worker_benchmark
from benchmarks.dbt_project import generate_project
from benchmarks.local_dbt import ARMS, COMMANDS, Harness, run_local_benchmark
from benchmarks.machine import git_commit, machine_info
from benchmarks.paths import BENCH_DIR, BENCHMARKS_MD, PLOT_PNG, PROJECTS_DIR, REPO, RESULTS_DIR, WORK_DIR
from benchmarks.render import render
from benchmarks.task_group_deploy import run_deploy_benchmark
from benchmarks.task_group_parse import run_task_group_parse_benchmark
from benchmarks.trigger_scale import run_trigger_benchmark

BENCHMARKS = ("local", "triggers", "api", "cold_workers", "task_group_parse", "task_group_deploy")
FULL = {
    "local_sizes": [10, 500],
    "trigger_sizes": [100, 500, 1000],
    "runs": 5,
    "runs_largest": 3,
    "cold_worker_models": 500,
    "deploy_models": 100,
    "parse_sizes": [100, 1000, 5000],
    "parse_repeats": 3,
}
SMOKE = {
    "local_sizes": [10],
    "trigger_sizes": [100],
    "runs": 1,
    "runs_largest": 1,
    "cold_worker_models": 10,
    "deploy_models": 10,
    "parse_sizes": [100],
    "parse_repeats": 1,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="each benchmark once, smallest size only")
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of {BENCHMARKS} (default: all; --smoke leaves out task_group_deploy, "
        "which starts a deployment, unless named here)",
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="run the arms in this venv's Python instead of .bench/venv (no anchors are installed; "
        "arms that cannot import are reported as not run)",
    )
    parser.add_argument("--skip-install", action="store_true", help="use .bench/venv as it is")
    parser.add_argument("--local-arms", default=",".join(ARMS), help=f"subset of {list(ARMS)}")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="dbt commands: run,build")
    parser.add_argument("--local-sizes", help="model counts, e.g. 10,500")
    parser.add_argument("--trigger-sizes", help="concurrent runs, e.g. 100,500,1000")
    parser.add_argument("--runs", type=int, help="runs per figure (the largest size gets min(runs, 3))")
    parser.add_argument("--out", type=Path, help="Markdown to write (default BENCHMARKS.md; smoke: .bench/)")
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = ",".join(b for b in BENCHMARKS if not (args.smoke and b == "task_group_deploy"))
    unknown = set(_split(args.only)) - set(BENCHMARKS)
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHMARKS)}")
    unknown = set(_split(args.local_arms)) - set(ARMS)
    if unknown:
        parser.error(f"--local-arms: unknown arm(s) {sorted(unknown)}; choose from {list(ARMS)}")
    unknown = set(_split(args.commands)) - set(COMMANDS)
    if unknown:
        parser.error(f"--commands: unknown command(s) {sorted(unknown)}; choose from {list(COMMANDS)}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str | None, default: list[int]) -> list[int]:
    return [int(x) for x in _split(text)] if text else default


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = dict(SMOKE if args.smoke else FULL)
    runs = args.runs or int(plan["runs"])  # type: ignore[call-overload]
    runs_largest = 1 if args.smoke else min(runs, int(plan["runs_largest"]))  # type: ignore[call-overload]
    local_sizes = _ints(args.local_sizes, list(plan["local_sizes"]))  # type: ignore[call-overload]
    trigger_sizes = _ints(args.trigger_sizes, list(plan["trigger_sizes"]))  # type: ignore[call-overload]

    def runs_for(sizes: list[int]) -> Any:
        return lambda size: runs_largest if size == max(sizes) and len(sizes) > 1 else runs

    started = time.time()
    results: dict[str, Any] = {
        "schema": 1,
        "smoke": args.smoke,
        "command": f"python -m benchmarks.run {shlex.join(sys.argv[1:] if argv is None else argv)}".strip(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git_commit": git_commit(),
    }
    if args.python:
        python = args.python
        reason = f"not installed: arms ran in {python}"
        results["anchors"] = {
            d: {"installed": False, "version": None, "reason": reason} for d in venv.ANCHORS
        }
    else:
        if args.skip_install:
            results["anchors"] = venv.anchor_statuses_without_install()
        else:
            log("installing .bench/venv (anchors pinned to .venv's Airflow, dbt-core, dbt-duckdb)")
            results["anchors"] = venv.ensure_bench_venv()["anchors"]
        python = venv.bench_python()
    results["versions"] = venv.installed_versions(python)
    only = set(_split(args.only))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    harness = Harness(python=python, work_dir=WORK_DIR)
    if "local" in only:
        projects = [generate_project(PROJECTS_DIR, size) for size in local_sizes]
        results["local_dbt"] = _guarded("local", lambda: run_local_benchmark(
            harness=harness, projects=projects, runs_for=runs_for(local_sizes),
            arm_keys=_split(args.local_arms), commands=_split(args.commands), log=log,
        ))  # fmt: skip
    if "triggers" in only:
        results["triggers"] = _guarded("triggers", lambda: run_trigger_benchmark(
            python=python, cwd=REPO, sizes=trigger_sizes, runs_for=runs_for(trigger_sizes), log=log
        ))  # fmt: skip
    if "api" in only:
        results["api"] = _guarded("api", lambda: run_api_benchmark(harness=harness, runs=runs, log=log))
    if "cold_workers" in only:
        models = int(plan["cold_worker_models"])  # type: ignore[call-overload]
        results["cold_workers"] = _guarded("cold_workers", lambda: run_cold_worker_benchmark(
            models=models, runs=runs if not args.smoke else 1, log=log
        ))  # fmt: skip
    if "task_group_parse" in only:
        parse_sizes = list(plan["parse_sizes"])  # type: ignore[call-overload]
        parse_repeats = int(plan["parse_repeats"])  # type: ignore[call-overload]
        results["task_group_parse"] = _guarded("task_group_parse", lambda: run_task_group_parse_benchmark(
            sizes=parse_sizes, repeats=parse_repeats, log=log
        ))  # fmt: skip
    if "task_group_deploy" in only:  # one run per arm: ~15 min at 100 models on a quiet 2-core machine
        deploy_models = int(plan["deploy_models"])  # type: ignore[call-overload]
        results["task_group_deploy"] = _guarded("task_group_deploy", lambda: run_deploy_benchmark(
            python=python, n_models=deploy_models, log=log
        ))  # fmt: skip
    results["duration_s"] = time.time() - started
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    results_path = RESULTS_DIR / f"{stamp}{'-smoke' if args.smoke else ''}.json"
    results_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"results: {results_path}")
    out = args.out or (BENCH_DIR / "BENCHMARKS.smoke.md" if args.smoke else BENCHMARKS_MD)
    plot = _plot(python, results_path, out.parent / "triggerer_scale.png" if args.smoke else PLOT_PNG)
    out.write_text(render(results, results_path, plot))
    log(f"wrote {out} in {(time.time() - started) / 60:.1f} min")
    return 0


def _guarded(name: str, benchmark: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark; if it breaks, record why and let the others run (their figures still count)."""
    try:
        return benchmark()
    except Exception as exc:
        log(f"{name}: did not complete: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _plot(python: Path, results_path: Path, out: Path) -> Path | None:
    """Draw the triggerer curve with the venv that has matplotlib; ``None`` (and say why) if none does."""
    result = subprocess.run(
        [str(python), "-m", "benchmarks.plot", str(results_path), str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        log(f"no plot: {(result.stderr.strip().splitlines() or ['unknown error'])[-1]}")
        return None
    return out


if __name__ == "__main__":
    sys.exit(main())
