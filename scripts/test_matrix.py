"""Run the minimum lane's suites on every Airflow minor x dbt-core minor; write docs/compatibility.md.

Why: the package declares Airflow 3.1-3.3 and dbt-core 1.8-1.12; ``make test`` checks the newest
versions (uv.lock) and the floors (``make test-min``); this checks every pair in between. Each cell
gets its own virtualenv (``.venv-matrix/a<airflow>-d<dbt>``) with the built wheel's ``[dev]`` extra,
that Airflow minor's newest patch, that dbt-core minor's newest patch and, for each adapter, the
newest patch of the same minor (or the adapter's newest release, when it has no such minor yet).
Everything else floats as uv resolves it, through ``scripts/uv-overrides.txt``.

Results accumulate in ``docs/compatibility.json`` (a cell not run keeps its last measurement, and a
cell never run says "not measured yet"); ``docs/compatibility.md`` is rendered from it.

    python scripts/test_matrix.py --uv .tools/bin/uv [--cells 3.1x1.8 3.3x1.12] -- tests/unit ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = ("3.1", "3.2", "3.3")
DBT = ("1.8", "1.9", "1.10", "1.11", "1.12")
#: The newest minor each adapter has released (dbt-core 1.12 pairs with these).
ADAPTER_NEWEST_MINOR = {"dbt-duckdb": "1.11", "dbt-postgres": "1.11"}
#: Packages whose resolved version each cell reports.
REPORTED = (
    "apache-airflow",
    "apache-airflow-task-sdk",
    "dbt-core",
    "dbt-adapters",
    "dbt-duckdb",
    "dbt-postgres",
    "duckdb",
    "fastapi",
    "svcs",
)
RESULTS = ROOT / "docs" / "compatibility.json"
REPORT = ROOT / "docs" / "compatibility.md"
#: Dropped on purpose by scripts/uv-overrides.txt (see pyproject's [tool.uv]); pip check names it.
OVERRIDDEN = "dbt-core-experimental-parser"
#: Per-cell bound; a hung cell fails instead of stalling the matrix.
CELL_TIMEOUT_S = 30 * 60


def requirements(airflow: str, dbt: str) -> list[str]:
    """The pins of one cell (the wheel's own floors still apply)."""
    pins = [f"apache-airflow~={airflow}.0", f"dbt-core~={dbt}.0"]
    for adapter, newest in ADAPTER_NEWEST_MINOR.items():
        minor = dbt if _minor(dbt) <= _minor(newest) else newest
        pins.append(f"{adapter}~={minor}.0")
    return pins


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def run_cell(uv: str, wheel: Path, airflow: str, dbt: str, suites: list[str]) -> dict[str, Any]:
    """Install and test one cell; return its measurement."""
    venv = ROOT / ".venv-matrix" / f"a{airflow}-d{dbt}"
    python = venv / "bin" / "python"
    env = {**os.environ, "UV_LINK_MODE": "hardlink", "ADP_REQUIRE_WHEEL": "1"}
    started = time.monotonic()
    if not python.exists():
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    pins = requirements(airflow, dbt)
    install = subprocess.run(
        [uv, "pip", "install", "--python", str(python), "--quiet", "--overrides",
         str(ROOT / "scripts" / "uv-overrides.txt"), "--reinstall-package", "airflow-dbt-provider",
         *pins, f"{wheel}[dev]"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    cell: dict[str, Any] = {"airflow": airflow, "dbt": dbt, "pins": pins, "measured": _now()}
    if install.returncode != 0:
        return {**cell, "result": "fail", "stage": "install", "detail": _tail(install.stderr)}
    cell["versions"] = installed_versions(uv, python)
    check = subprocess.run(
        [uv, "pip", "check", "--python", str(python)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (check.stdout + check.stderr).splitlines()
        if line.startswith("The package") and OVERRIDDEN not in line
    ]
    if check.returncode != 0 and (problems or "incompatib" not in check.stdout + check.stderr):
        return {**cell, "result": "fail", "stage": "pip check", "detail": _tail(check.stdout + check.stderr)}
    junit = venv / "junit.xml"
    try:
        tests = subprocess.run(
            [str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
             "-m", "not e2e", f"--junitxml={junit}", *suites],
            cwd=ROOT, capture_output=True, text=True, env=env, timeout=CELL_TIMEOUT_S, check=False,
        )  # fmt: skip
        returncode, output = tests.returncode, tests.stdout
    except subprocess.TimeoutExpired as exc:
        returncode, output = -1, f"timed out after {CELL_TIMEOUT_S}s\n{exc.stdout or ''}"
    cell.update(counts(junit), minutes=round((time.monotonic() - started) / 60, 1))
    cell["result"] = "pass" if returncode == 0 else "fail"
    if returncode != 0:
        cell.update(stage="tests", detail=_failures(output))
    return cell


def installed_versions(uv: str, python: Path) -> dict[str, str]:
    listing = subprocess.run(
        [uv, "pip", "list", "--python", str(python), "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    versions = {row["name"].lower(): row["version"] for row in json.loads(listing.stdout)}
    return {name: versions[name] for name in REPORTED if name in versions}


def counts(junit: Path) -> dict[str, int]:
    if not junit.is_file():
        return {}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total, failures = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, skipped = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
    return {"passed": total - failures - errors - skipped, "failed": failures + errors, "skipped": skipped}


def _failures(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(("FAILED tests/", "ERROR tests/"))]
    return "\n".join(lines[:30]) or _tail(output)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def render(results: dict[str, dict[str, Any]]) -> str:
    """docs/compatibility.md from the accumulated results."""
    out = [
        "# Compatibility: Airflow x dbt-core",
        "",
        "Generated by `make test-matrix` (scripts/test_matrix.py) from docs/compatibility.json; do not",
        "edit by hand. Each cell installs the built wheel's `[dev]` extra with that Airflow minor's",
        "newest patch, that dbt-core minor's newest patch and the matching dbt-duckdb/dbt-postgres",
        "(see `requirements()`), and runs the minimum lane's suites (unit, cloud, hooks, assets, core,",
        "operators, task groups — including one `dag.test()` of each example DAG). `make test` runs",
        "the newest versions (uv.lock) and the floors (`make test-min`: Airflow 3.1.8, dbt-core 1.8.9)",
        "on every change; this matrix is run by hand.",
        "",
        "| Airflow \\ dbt-core | " + " | ".join(DBT) + " |",
        "|---|" + "---|" * len(DBT),
    ]
    for airflow in AIRFLOW:
        row = [f"**{airflow}**"]
        for dbt in DBT:
            cell = results.get(f"{airflow}x{dbt}")
            if cell is None:
                row.append("not measured yet")
            else:
                counted = f" ({cell['passed']} passed)" if "passed" in cell else ""
                row.append(f"{cell['result']}{counted}")
        out.append("| " + " | ".join(row) + " |")
    out += ["", "## Cells", ""]
    for airflow in AIRFLOW:
        for dbt in DBT:
            cell = results.get(f"{airflow}x{dbt}")
            if cell is None:
                continue
            versions = ", ".join(f"{k} {v}" for k, v in cell.get("versions", {}).items())
            out.append(f"### Airflow {airflow} x dbt-core {dbt}: {cell['result']}")
            out.append("")
            pins = " ".join(cell["pins"])
            out.append(f"- measured {cell['measured']}, {cell.get('minutes', '?')} min; pins: `{pins}`")
            out.append(f"- resolved: {versions or 'n/a'}")
            if "passed" in cell:
                out.append(
                    f"- tests: {cell['passed']} passed, {cell['failed']} failed, {cell['skipped']} skipped"
                )
            if cell.get("note"):
                out.append(f"- note: {cell['note']}")
            if cell["result"] != "pass":
                out += [f"- failed at {cell.get('stage')}:", "", "```", cell.get("detail", ""), "```"]
            out.append("")
    out += [
        "## What degrades on older Airflow",
        "",
        "See `airflow_dbt_provider/compat.py` (each version fact once) and docs/dbt_core.md /",
        "docs/dbt_cloud_operators.md:",
        "",
        "- **Task state store** (Airflow 3.3): without it `retry_from_failure` keeps its state in",
        "  `artifacts_dir` (set it to a directory every try reaches), and the dbt Cloud operator finds",
        "  its own run by the token in the run's `cause`.",
        "- **Trigger `on_kill`** (Airflow 3.3): without it, killing a task while it is deferred does not",
        "  cancel its dbt Cloud run from the triggerer; the deadline (`timeout`) still cancels it in",
        "  `execute_complete`. The task log says so once, as the task defers.",
        "- **`start_from_trigger`** (Airflow 3.3): the scheduler defers a task straight to its trigger.",
        "  On 3.1/3.2 (where the scheduler's code for it is commented out) a `single_build` node task",
        "  starts on a worker — one short slot — and defers; its success still ends in the triggerer",
        "  (docs/dbt_task_group.md).",
        "- **Declarative `conn-fields`** (Airflow 3.2): on 3.1 the hooks' `get_connection_form_widgets`",
        "  / `get_ui_field_behaviour` (built from the same provider info) show the same form fields.",
        "",
        "## Airflow 3.2: fastapi and svcs are capped",
        "",
        "Airflow 3.2.x (3.2.2 is its newest patch) leaves fastapi and svcs uncapped, and their newest",
        "releases break it for every DAG, with or without this provider (shown with an EmptyOperator /",
        "PythonOperator DAG under `airflow dags test`). The package therefore declares",
        "`fastapi<0.156.1` and `svcs<26.2` (pyproject.toml says why, next to the pins); Airflow 3.1",
        "and 3.3 cap fastapi lower themselves and run either svcs.",
        "",
        "- **fastapi >= 0.156.1**: `Body()` now keeps the `Field(discriminator=<callable>)` of",
        "  Airflow's `TIStateUpdate`, which pydantic rejects, so the execution API cannot be built: the",
        "  api-server fails to start and each `dags test` task fails with `PydanticUserError: Model",
        "  'TITerminalStatePayload' needs a discriminator field`. 0.156.0 is the newest that works",
        "  (with cadwyn 9.0, pydantic 2.14; older cadwyn is not needed).",
        "- **svcs >= 26.2**: its FastAPI lifespan removes `app.state.svcs_registry` on exit, and 3.2's",
        "  in-process execution API (what `airflow dags test` and `dag.test()` use) lets its lifespan",
        "  end before the first request, so each task fails to start (`'State' object has no",
        "  attribute 'svcs_registry'`). 26.1.0 works. Airflow 3.3 keeps that lifespan open.",
        "",
        "dbt-core differences (options added since 1.8, e.g. `--sample` 1.10, `--event-time-start` 1.9)",
        "are in `airflow_dbt_provider/core/dbt_versions.py`; an option the installed dbt-core lacks is",
        "an error naming the version that has it.",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", required=True)
    parser.add_argument("--cells", nargs="*", help="e.g. 3.1x1.8 (default: every cell)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("suites", nargs="*")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    cells = args.cells or [f"{a}x{d}" for a in AIRFLOW for d in DBT]
    wheels = sorted((ROOT / "dist").glob("*.whl"))
    if not args.render_only:
        if len(wheels) != 1:
            sys.exit(f"expected one wheel in dist/, found {wheels}; run `make wheel`")
        for name in cells:
            airflow, dbt = name.split("x")
            if airflow not in AIRFLOW or dbt not in DBT:
                sys.exit(f"unknown cell {name!r}: Airflow one of {AIRFLOW}, dbt-core one of {DBT}")
            print(f"== Airflow {airflow} x dbt-core {dbt}", flush=True)
            results[name] = run_cell(args.uv, wheels[0], airflow, dbt, args.suites)
            print(f"   {results[name]['result']} {results[name].get('versions', '')}", flush=True)
            RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            REPORT.write_text(render(results))
    REPORT.write_text(render(results))
    failed = [name for name in cells if results.get(name, {}).get("result") != "pass"]
    if failed and not args.render_only:
        sys.exit(f"failed cells: {', '.join(failed)} (see docs/compatibility.md)")


if __name__ == "__main__":
    main()
