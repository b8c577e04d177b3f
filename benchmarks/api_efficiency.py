"""API efficiency: requests one job run costs end to end (trigger -> wait -> artifacts), ours vs the
official provider, counted by the emulator's request log.

Each implementation runs the same DAG shape under ``airflow dags test`` (the local harness's venv
and template home): run the job and wait (polling every ``CHECK_INTERVAL_S``), then fetch
``manifest.json`` and ``run_results.json``. Polls depend on how long the run takes, so requests are
reported per kind (start, poll, artifacts, other) as well as in total.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.emulator import EmulatorProcess
from benchmarks.local_dbt import Harness
from benchmarks.measure import run_measured
from benchmarks.stats import summarize

CONN_ID = "dbt_cloud_bench"
CHECK_INTERVAL_S = 1.0
EMULATOR_SPEED = 5.0
ARTIFACTS = ("manifest.json", "run_results.json")
#: implementation -> (module, run operator, artifact operator)
IMPLS = {
    "ours": (
        "airflow_dbt_provider.operators.dbt_cloud",
        "DbtCloudRunJobOperator",
        "DbtCloudGetRunArtifactOperator",
    ),
    "official": (
        "airflow.providers.dbt.cloud.operators.dbt",
        "DbtCloudRunJobOperator",
        "DbtCloudGetJobRunArtifactOperator",
    ),
}
_KINDS = (
    ("start", re.compile(r"^POST /api/v2/accounts/\d+/jobs/\d+/run/$")),
    ("poll", re.compile(r"^GET /api/v2/accounts/\d+/runs/\d+/$")),
    ("artifacts", re.compile(r"^GET /api/v2/accounts/\d+/runs/\d+/artifacts/")),
)
_STATE = re.compile(r"new_state=(\w+)")


def dag_source(impl: str, dag_id: str, account_id: int, job_id: int, out_dir: Path) -> str:
    module, run_cls, artifact_cls = IMPLS[impl]
    return (
        f'"""API efficiency, {impl}: run a dbt Cloud job, wait, fetch artifacts (generated)."""\n\n'
        "import os\n"
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        f"from {module} import {run_cls}, {artifact_cls}\n\n"
        f"with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC')):\n"
        f"    run = {run_cls}(task_id='run', dbt_cloud_conn_id={CONN_ID!r}, job_id={job_id}, "
        f"account_id={account_id}, check_interval={CHECK_INTERVAL_S}, wait_for_termination=True, "
        "deferrable=False)\n"
        f"    for i, path in enumerate({list(ARTIFACTS)!r}):\n"
        f"        run >> {artifact_cls}(task_id=f'artifact_{{i}}', dbt_cloud_conn_id={CONN_ID!r}, "
        f"account_id={account_id}, run_id=\"{{{{ ti.xcom_pull(task_ids='run') }}}}\", path=path, "
        f"output_file_name=os.path.join({str(out_dir)!r}, f'{{i}}.json'))\n"
    )


def classify(requests: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts = {kind: 0 for kind, _ in _KINDS} | {"other": 0, "total": len(requests)}
    for request in requests:
        line = f"{request['method']} {request['path']}"
        kind = next((k for k, pattern in _KINDS if pattern.match(line)), "other")
        counts[kind] += 1
    return counts


def _dag_succeeded(output: str, tasks: int) -> str | None:
    states = _STATE.findall(output)
    if states.count("success") >= tasks and not {"failed", "upstream_failed"} & set(states):
        return None
    tail = "\n".join(output.strip().splitlines()[-12:])
    return f"task states {states}: {tail}"


def run_api_benchmark(
    *, harness: Harness, runs: int, impls: Sequence[str] = tuple(IMPLS), log: Callable[[str], None] = print
) -> dict[str, Any]:
    unavailable = {impl: harness.importable(IMPLS[impl][0]) for impl in impls}
    cases = []
    with EmulatorProcess(
        harness.python, speed=EMULATOR_SPEED, cwd=_repo(), env=harness.base_env()
    ) as emulator:
        info = emulator.info
        assert info is not None
        for impl in impls:
            if unavailable[impl]:
                log(f"api: {impl} unavailable: {unavailable[impl]}")
                continue
            log(f"api: {impl} x{runs}")
            samples: list[dict[str, Any]] = []
            error = None
            for _ in range(runs):
                emulator.command("reset")
                emulator.command("speed", speed=EMULATOR_SPEED)
                error = _one_run(harness, impl, info, samples)
                if error:
                    log(f"api: {impl} failed: {error.splitlines()[0]}")
                    break
                samples[-1].update(classify(emulator.requests()))
            case: dict[str, Any] = {"impl": impl, "samples": samples, "error": error}
            for kind in ("total", "start", "poll", "artifacts", "other"):
                case[kind] = summarize([float(s[kind]) for s in samples])
            cases.append(case)
    return {
        "impls": {
            impl: {"available": reason is None, "reason": reason} for impl, reason in unavailable.items()
        },
        "check_interval_s": CHECK_INTERVAL_S,
        "emulator_speed": EMULATOR_SPEED,
        "artifacts": list(ARTIFACTS),
        "mode": "deferrable=False, wait_for_termination=True; under `airflow dags test`",
        "cases": cases,
    }


def _one_run(harness: Harness, impl: str, info: Any, samples: list[dict[str, Any]]) -> str | None:
    dag_id = f"bench_api_{impl}"
    dags = harness.work_dir / "dags" / dag_id
    out_dir = harness.work_dir / "api-artifacts" / impl
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "dag.py").write_text(dag_source(impl, dag_id, info.account_id, info.job_ids["success"], out_dir))
    home = harness.fresh_home(dag_id)
    env = harness.home_env(home)
    host = info.base_url.split("://", 1)[1]
    conn = {"conn_type": "dbt_cloud", "login": str(info.account_id), "password": info.token, "host": host}
    env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn),
        "SSL_CERT_FILE": info.ca_cert_path or "",
        "REQUESTS_CA_BUNDLE": info.ca_cert_path or "",
    })  # fmt: skip
    measurement = run_measured(
        [str(harness.bin_dir / "airflow"), "dags", "test", dag_id],
        env=env, cwd=harness.work_dir, timeout_s=600,
    )  # fmt: skip
    # The output may echo the connection: keep only our verdict, never raw output with a token in it.
    error = _dag_succeeded(measurement.output_tail.replace(info.token, "***"), 1 + len(ARTIFACTS))
    if error is None:
        samples.append({"wall_s": measurement.wall_s})
        shutil.rmtree(home, ignore_errors=True)
    return error


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent
