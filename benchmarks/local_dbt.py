"""Local dbt task overhead: one Airflow task running dbt, through each arm, under one harness.

Every arm is a generated one-task DAG in a folder of its own (so parsing one arm's DAG never
imports another arm's library), run as ``airflow tasks test <dag> dbt`` in a fresh process with a
fresh ``AIRFLOW_HOME`` copied from one migrated template. Cold arms start with no ``target/`` and an
empty cache; warm arms are run once untimed first and keep their cache between timed runs.
``airflow tasks test`` exits 0 even when the task fails, so success is read from the task's final
state in the log, and a failed run is recorded as an error, never as a figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dbt_project import PROFILE, TARGET, BenchProject
from benchmarks.measure import Measurement
from benchmarks.stats import summarize
from benchmarks.task_zygote import Zygote

COMMANDS = ("run", "build")
HARNESS_DESCRIPTION = (
    "`airflow tasks test <dag> dbt`, each run a fresh process forked from one Airflow with the "
    "execution API already built (benchmarks/task_zygote.py); a fresh SQLite database copied from a "
    "migrated template per run; one DAG file per arm in its own dags folder"
)
TASK_ID = "dbt"
_STATE = re.compile(r"new_state=(\w+)")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Failure)\b.*:")


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    #: Module whose import proves the arm can run in the benchmark venv.
    requires: str
    #: Warm arms keep their parse cache between runs (after one untimed warm-up run).
    warm: bool
    #: Python source of the task; ``{command}``-specific names are filled in by ``task_source``.
    task_source: Callable[[str], str]
    note: str = ""


def _select_kw(command: str, style: str) -> str:
    if command != "run":
        return ""
    return {"str": ", select=SELECT", "list": ", select=[SELECT]"}[style]


def _dbt_args(command: str) -> str:
    select = ' + ["--select", SELECT]' if command == "run" else ""
    return f'["{command}", "--project-dir", PROJECT_DIR, "--profiles-dir", PROFILES_DIR]{select}'


def _baseline(command: str) -> str:
    return (
        "from airflow.providers.standard.operators.python import PythonOperator\n\n"
        "def _nothing():\n    return None\n\n"
        f"TASK = lambda: PythonOperator(task_id={TASK_ID!r}, python_callable=_nothing)\n"
    )


def _floor(command: str) -> str:
    return (
        "from airflow.providers.standard.operators.python import PythonOperator\n\n"
        "def _invoke():\n"
        "    from dbt.cli.main import dbtRunner\n\n"
        f"    result = dbtRunner().invoke({_dbt_args(command)})\n"
        "    if not result.success:\n"
        f"        raise RuntimeError(f'dbt {command} failed: {{result.exception}}')\n\n"
        f"TASK = lambda: PythonOperator(task_id={TASK_ID!r}, python_callable=_invoke)\n"
    )


def _bash(command: str) -> str:
    return (
        "import os, shlex, sys\n"
        "from airflow.providers.standard.operators.bash import BashOperator\n\n"
        "DBT = os.path.join(os.path.dirname(sys.executable), 'dbt')\n"
        f"CMD = ' '.join(shlex.quote(a) for a in [DBT, *{_dbt_args(command)}])\n"
        f"TASK = lambda: BashOperator(task_id={TASK_ID!r}, bash_command=CMD)\n"
    )


def _ours(command: str) -> str:
    cls = {"run": "DbtRunOperator", "build": "DbtBuildOperator"}[command]
    return (
        f"from airflow_dbt_provider.operators.dbt import {cls}\n\n"
        f"TASK = lambda: {cls}(task_id={TASK_ID!r}, project_dir=PROJECT_DIR, profiles_dir=PROFILES_DIR"
        f"{_select_kw(command, 'str')})\n"
    )


def _cosmos(command: str) -> str:
    cls = {"run": "DbtRunLocalOperator", "build": "DbtBuildLocalOperator"}[command]
    return (
        "import os\n"
        "from cosmos.config import ProfileConfig\n"
        "from cosmos.constants import InvocationMode\n"
        f"from cosmos.operators.local import {cls}\n\n"
        f"PROFILE = ProfileConfig(profile_name={PROFILE!r}, target_name={TARGET!r}, "
        "profiles_yml_filepath=os.path.join(PROFILES_DIR, 'profiles.yml'))\n"
        f"TASK = lambda: {cls}(task_id={TASK_ID!r}, project_dir=PROJECT_DIR, profile_config=PROFILE, "
        f"invocation_mode=InvocationMode.DBT_RUNNER, install_deps=False{_select_kw(command, 'str')})\n"
    )


def _dbt_python(command: str) -> str:
    cls = {"run": "DbtRunOperator", "build": "DbtBuildOperator"}[command]
    return (
        f"from airflow_dbt_python.operators.dbt import {cls}\n\n"
        f"TASK = lambda: {cls}(task_id={TASK_ID!r}, project_dir=PROJECT_DIR, profiles_dir=PROFILES_DIR"
        f"{_select_kw(command, 'list')})\n"
    )


ARMS: dict[str, Arm] = {
    arm.key: arm
    for arm in (
        Arm("baseline", "harness only: empty PythonOperator", "airflow.providers.standard", False, _baseline,
            "what `airflow tasks test` costs with no dbt at all; subtract it to see dbt's share"),
        Arm("ours_cold", "ours (in-process, cold)", "airflow_dbt_provider.operators.dbt", False, _ours),
        Arm("ours_warm", "ours (in-process, parse cache warm)", "airflow_dbt_provider.operators.dbt", True,
            _ours),
        Arm("floor_cold", "floor: PythonOperator + bare dbtRunner (cold)", "dbt.cli.main", False, _floor),
        Arm("floor_warm", "floor: PythonOperator + bare dbtRunner (partial parse warm)", "dbt.cli.main", True,
            _floor),
        Arm("bash", "BashOperator + dbt CLI", "airflow.providers.standard", False, _bash),
        Arm("cosmos", "astronomer-cosmos DbtLocalOperator (dbt_runner)", "cosmos.operators.local", False,
            _cosmos, "invocation_mode=DBT_RUNNER, install_deps=False"),
        Arm("dbt_python", "airflow-dbt-python operator", "airflow_dbt_python.operators.dbt", False,
            _dbt_python, "its defaults: partial_parse=False"),
    )
}  # fmt: skip


def dag_source(arm: Arm, command: str, project: BenchProject, dag_id: str) -> str:
    """The whole DAG file of one arm and command, self-contained and readable."""
    return (
        f'"""Benchmark arm {arm.key}: dbt {command} on {project.n_models} models (generated)."""\n\n'
        "import pendulum\n"
        "from airflow.sdk import DAG\n\n"
        f"PROJECT_DIR = {str(project.project_dir)!r}\n"
        f"PROFILES_DIR = {str(project.profiles_dir)!r}\n"
        f"SELECT = {project.one_model!r}\n\n"
        f"{arm.task_source(command)}\n"
        f"with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC')):\n"
        "    TASK()\n"
    )


@dataclass
class Harness:
    """Everything shared by the runs: the venv running Airflow, the template home, scratch space."""

    python: Path
    work_dir: Path
    timeout_s: float = 1800.0

    @property
    def bin_dir(self) -> Path:
        return self.python.parent

    def base_env(self) -> dict[str, str]:
        """The caller's environment minus anything Airflow- or Python-path-related that would leak in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "PYTHONPATH", "DBT_", "VIRTUAL_ENV"))
        }
        env.update(
            {
                "PATH": f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            }
        )
        return env

    def home_env(self, home: Path) -> dict[str, str]:
        env = self.base_env()
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos-cache"),
                "AIRFLOW_DBT_PROVIDER_CACHE_DIR": str(home / "dbt-provider-cache"),
                # airflow-dbt-python reads local projects through this connection, which Airflow 3
                # no longer creates by default; every arm gets it so the environments stay equal.
                "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs", "extra": {"path": "/"}}),
            }
        )
        return env

    def template_home(self) -> Path:
        """A migrated Airflow home, created once; every run starts from a copy of it."""
        template = self.work_dir / "airflow-template"
        marker = template / ".migrated"
        if not marker.exists():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir(parents=True)
            env = self.home_env(template)
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(template / "dags")
            subprocess.run(
                [str(self.bin_dir / "airflow"), "db", "migrate"],
                env=env, check=True, capture_output=True, timeout=600,
            )  # fmt: skip
            marker.touch()
        return template

    @property
    def run_home(self) -> Path:
        """The ``AIRFLOW_HOME`` of every forked run (fixed: the harness imported Airflow with it)."""
        return self.work_dir / "run-home"

    def reset_run_home(self) -> Path:
        """Empty the run home and give it a fresh copy of the migrated database.

        The database is replaced by rename, so nothing can still hold the previous run's file.
        """
        home = self.run_home
        template = self.template_home()
        home.mkdir(parents=True, exist_ok=True)
        for child in home.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            elif child.name != "airflow.cfg":
                child.unlink(missing_ok=True)
        fresh = home / "airflow.db.fresh"
        shutil.copy2(template / "airflow.db", fresh)
        os.replace(fresh, home / "airflow.db")
        if (template / "airflow.cfg").exists() and not (home / "airflow.cfg").exists():
            shutil.copy2(template / "airflow.cfg", home / "airflow.cfg")
        return home

    def zygote(self) -> Zygote:
        """The warm Airflow that forks every run (see :mod:`benchmarks.task_zygote`)."""
        home = self.reset_run_home()
        env = self.home_env(home)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(self.work_dir / "dags")
        return Zygote(self.python, env=env, cwd=self.work_dir, stderr_path=self.work_dir / "harness.log")

    def fresh_home(self, name: str) -> Path:
        home = self.work_dir / "homes" / name
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        template = self.template_home()
        for file in ("airflow.db", "airflow.cfg"):
            if (template / file).exists():
                shutil.copy2(template / file, home / file)
        return home

    def importable(self, module: str) -> str | None:
        """``None`` if ``module`` imports in the harness venv, else the reason it does not."""
        result = subprocess.run(
            [str(self.python), "-c", f"import {module}"],
            env=self.base_env(), cwd=self.work_dir, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode == 0:
            return None
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return f"cannot import {module}: {lines[-1] if lines else 'unknown error'}"


def task_state(output: str) -> str | None:
    """The task's final state as the in-process execution API logged it."""
    states = _STATE.findall(output)
    return states[-1] if states else None


def run_arm_once(
    harness: Harness, zygote: Zygote, arm: Arm, command: str, project: BenchProject, *, warm_cache: Path
) -> Measurement:
    """One ``airflow tasks test`` of ``arm`` (forked by the harness); the caller decides whether it counts."""
    dag_id = f"bench_{arm.key}_{command}_{project.n_models}"
    dags = harness.work_dir / "dags" / dag_id
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "dag.py").write_text(dag_source(arm, command, project, dag_id))
    if not arm.warm:
        clear_parse_state(project)
    home = harness.reset_run_home()
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_DBT_PROVIDER_CACHE_DIR": str(warm_cache if arm.warm else home / "dbt-provider-cache"),
    }
    log = harness.work_dir / "logs" / f"{dag_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    answer = zygote.run(["tasks", "test", dag_id, TASK_ID], env=env, log=log, timeout_s=harness.timeout_s)
    output = log.read_text(errors="replace")[-20000:]
    return Measurement(
        wall_s=float(answer["wall_s"]),
        cpu_s=float(answer["cpu_s"]),
        peak_rss_mb=float(answer["maxrss_kb"]) / 1024,  # Linux reports KiB
        returncode=-9 if answer["timed_out"] else int(answer["status"]),
        output_tail=output,
    )


def clear_parse_state(project: BenchProject) -> None:
    """Cold start: no ``target/`` (so no ``partial_parse.msgpack``) and no dbt logs from before."""
    for name in ("target", "logs"):
        shutil.rmtree(project.project_dir / name, ignore_errors=True)


def prepare_warehouse(harness: Harness, project: BenchProject) -> None:
    """Build the whole project once, untimed, so ``run -s <leaf>`` finds its upstream views."""
    clear_parse_state(project)
    result = subprocess.run(
        [str(harness.bin_dir / "dbt"), "build", "--project-dir", str(project.project_dir),
         "--profiles-dir", str(project.profiles_dir)],
        env=harness.base_env(), capture_output=True, text=True, timeout=harness.timeout_s, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"preparing {project.project_dir} failed:\n{result.stdout[-3000:]}")
    clear_parse_state(project)


def benchmark_case(
    harness: Harness, zygote: Zygote, arm: Arm, command: str, project: BenchProject, runs: int
) -> dict[str, Any]:
    """``runs`` timed runs of one arm on one project; stops at the first failed run."""
    warm_cache = harness.work_dir / "warm-cache" / f"{arm.key}_{project.n_models}"
    samples: list[dict[str, float]] = []
    error = None
    if arm.warm:
        shutil.rmtree(warm_cache, ignore_errors=True)
        clear_parse_state(project)
        warmup = run_arm_once(harness, zygote, arm, command, project, warm_cache=warm_cache)
        error = _failure(warmup)
    for _ in range(runs if error is None else 0):
        measurement = run_arm_once(harness, zygote, arm, command, project, warm_cache=warm_cache)
        error = _failure(measurement)
        if error:
            break
        samples.append(
            {"wall_s": measurement.wall_s, "cpu_s": measurement.cpu_s, "peak_rss_mb": measurement.peak_rss_mb}
        )
    return {
        "arm": arm.key,
        "command": command,
        "size": project.n_models,
        "samples": samples,
        "wall_s": summarize([s["wall_s"] for s in samples]),
        "cpu_s": summarize([s["cpu_s"] for s in samples]),
        "peak_rss_mb": summarize([s["peak_rss_mb"] for s in samples]),
        "error": error,
    }


def _failure(measurement: Measurement) -> str | None:
    if measurement.returncode != 0:
        return f"exit code {measurement.returncode}: {_tail(measurement.output_tail)}"
    state = task_state(measurement.output_tail)
    if state != "success":
        return f"task ended in state {state!r}: {_tail(measurement.output_tail)}"
    return None


def _tail(text: str, lines: int = 12) -> str:
    """The first exception lines (the cause) and the last lines (the outcome) of a run's output."""
    all_lines = text.strip().splitlines()
    causes = [line.strip() for line in all_lines if _EXCEPTION_LINE.match(line.strip())]
    return "\n".join([*dict.fromkeys(causes[:5]), *all_lines[-lines:]])


def run_local_benchmark(
    *,
    harness: Harness,
    projects: Sequence[BenchProject],
    runs_for: Callable[[int], int],
    arm_keys: Sequence[str],
    commands: Sequence[str] = COMMANDS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every available arm x command x project; unavailable arms are recorded with their reason."""
    arms: dict[str, dict[str, Any]] = {}
    for key in arm_keys:
        arm = ARMS[key]
        reason = harness.importable(arm.requires)
        arms[key] = {"label": arm.label, "note": arm.note, "available": reason is None, "reason": reason}
        if reason:
            log(f"local: arm {key} unavailable: {reason}")
    cases = []
    with harness.zygote() as zygote:
        for project in projects:
            prepare_warehouse(harness, project)
            for command in commands:
                for key in arm_keys:
                    # The baseline runs no dbt: once (smallest project, first command) is all it needs.
                    if not arms[key]["available"] or (
                        key == "baseline" and (project is not projects[0] or command != commands[0])
                    ):
                        continue
                    runs = runs_for(project.n_models)
                    log(f"local: {key} dbt {command} on {project.n_models} models x{runs}")
                    case = benchmark_case(harness, zygote, ARMS[key], command, project, runs)
                    if case["error"]:
                        log(f"local: {key} failed: {case['error'].splitlines()[0]}")
                    cases.append(case)
    return {
        "harness": HARNESS_DESCRIPTION,
        "arms": arms,
        "cases": cases,
    }
