"""Triggerer scale: N concurrent deferred runs, our ``DbtCloudRunTrigger`` vs the official
``DbtCloudRunJobTrigger``, on one emulator, with the same poll interval.

Each measurement is a fresh worker process (``benchmarks.trigger_worker``) against a freshly reset
emulator in another process. The poll interval grows with N (N/200 s, at least 0.5 s) so the
emulator serves about 200 polls a second at every size and the emulated runs last about four
polls: the emulator must never be the bottleneck, and every size exercises the same pattern.
API calls are counted from the emulator's request log, never from the client's own account.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.emulator import EmulatorProcess
from benchmarks.stats import summarize
from benchmarks.trigger_worker import READY

IMPLS = ("ours", "official")
IMPL_MODULES = {
    "ours": "airflow_dbt_provider.triggers.dbt_cloud",
    "official": "airflow.providers.dbt.cloud.triggers.dbt",
}
POLLS_PER_RUN = 4
#: The emulator's "success" job takes about this long at speed 1.
SUCCESS_JOB_S = 10.0
RUN_PATH = re.compile(r"^/api/v2/accounts/\d+/runs/(\d+)/$")
WORKER_TIMEOUT_S = 900.0
#: Emulator speed while the runs are being started: their timelines barely move until the phase.
FROZEN_SPEED = 0.001
METRICS = ("cpu_s", "cpu_ms_per_poll", "wall_s", "peak_rss_mb", "max_stall_ms", "p99_stall_ms",
           "full_gc_in_phase", "calls_per_run_per_poll", "calls_per_run", "false_failures")  # fmt: skip


def poll_interval_for(n: int) -> float:
    return max(0.5, n / 200)


def speed_for(poll_interval: float) -> float:
    """Emulator speed at which a successful run lasts about ``POLLS_PER_RUN`` poll intervals."""
    return SUCCESS_JOB_S / (POLLS_PER_RUN * poll_interval)


def fault_plan(n: int) -> list[dict[str, Any]]:
    """Transient faults on the poll endpoint, each hitting one poll in ten runs: a connection reset,
    a 503 answer, and a 2 s stall. A triggerer must ride all three out without failing a task."""
    path = "/api/v2/accounts/*/runs/*/"
    count = max(1, n // 10)
    return [
        {"kind": "reset", "path": path, "method": "GET", "count": count},
        {"kind": "status", "path": path, "method": "GET", "count": count, "status": 503},
        {"kind": "slow", "path": path, "method": "GET", "count": count, "delay": 2.0},
    ]


def count_calls(requests: Sequence[dict[str, Any]], since: float, poll_interval: float) -> dict[str, float]:
    """API calls the triggers made (everything after the phase began) and their poll rounds.

    A poll round of one run is a burst of requests about that run; bursts are at least half a poll
    interval apart. Dividing calls by rounds gives the calls one poll costs (1.0 is the minimum).
    """
    phase = [r for r in requests if float(r["time"]) >= since]
    per_run: dict[str, list[float]] = {}
    for request in phase:
        match = RUN_PATH.match(str(request["path"]))
        if match:
            per_run.setdefault(match.group(1), []).append(float(request["time"]))
    rounds = 0
    for times in per_run.values():
        times.sort()
        rounds += 1 + sum(1 for a, b in itertools.pairwise(times) if b - a >= poll_interval / 2)
    runs = max(1, len(per_run))
    return {
        "calls": float(len(phase)),
        "poll_rounds": float(rounds),
        "calls_per_run": len(phase) / runs,
        "calls_per_run_per_poll": len(phase) / rounds if rounds else math.nan,
    }


def measure_once(
    emulator: EmulatorProcess, python: Path, cwd: Path, impl: str, n: int, faults: bool
) -> dict[str, Any]:
    poll = poll_interval_for(n)
    speed = speed_for(poll)
    emulator.command("reset")
    if faults:
        for fault in fault_plan(n):
            emulator.command("fault", **fault)
    assert emulator.info is not None
    info = dataclasses.asdict(emulator.info)
    emulator.command("speed", speed=FROZEN_SPEED)
    command = [str(python), "-m", "benchmarks.trigger_worker", "--impl", impl, "--n", str(n),
               "--poll-interval", str(poll)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=cwd, env=_worker_env(), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = _handshake(proc, json.dumps(info), lambda: emulator.command("speed", speed=speed))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    if proc.returncode != 0 or not stdout.strip():
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"trigger worker {impl} n={n} failed ({proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result.pop("run_ids", None)
    calls = count_calls(emulator.requests(), result["phase_started_unix"], poll)
    result.update(calls)
    result["cpu_ms_per_poll"] = (
        1000 * result["cpu_s"] / calls["poll_rounds"] if calls["poll_rounds"] else None
    )
    return result


def _handshake(proc: subprocess.Popen[str], info: str, go: Callable[[], None]) -> tuple[str, str]:
    """Send the emulator's address, wait until the worker has started its runs, start the clock, go."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(info + "\n")
    proc.stdin.flush()
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(WORKER_TIMEOUT_S)
    if box and box[0].strip() == READY:
        go()
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return proc.communicate(timeout=WORKER_TIMEOUT_S)


def _worker_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    return env


def importable(python: Path, module: str, cwd: Path) -> str | None:
    result = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, text=True, cwd=cwd, timeout=300,
        env=_worker_env(),
    )  # fmt: skip
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return f"cannot import {module}: {lines[-1] if lines else 'unknown error'}"


def run_trigger_benchmark(
    *,
    python: Path,
    cwd: Path,
    sizes: Sequence[int],
    runs_for: Callable[[int], int],
    impls: Sequence[str] = IMPLS,
    scenarios: Sequence[str] = ("clean", "faults"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    unavailable = {impl: importable(python, IMPL_MODULES[impl], cwd) for impl in impls}
    for impl, reason in unavailable.items():
        if reason:
            log(f"triggers: {impl} unavailable: {reason}")
    cases: list[dict[str, Any]] = []
    with EmulatorProcess(python, speed=1.0, cwd=cwd, env=_worker_env()) as emulator:
        for scenario in scenarios:
            # Faults at the smallest and largest N: the trend, at half the cost of every size.
            for n in sizes if scenario == "clean" else sorted({min(sizes), max(sizes)}):
                for impl in impls:
                    if unavailable[impl]:
                        continue
                    cases.append(_case(emulator, python, cwd, impl, n, scenario, runs_for(n), log))
    return {
        "impls": {
            impl: {"available": reason is None, "reason": reason} for impl, reason in unavailable.items()
        },
        "poll_interval_rule": f"N/200 s (at least 0.5 s); emulated runs last about {POLLS_PER_RUN} polls",
        "fault_plan": "on the poll endpoint, N/10 each: connection resets, 503 answers, answers after 2 s",
        "cases": cases,
    }


def _case(
    emulator: EmulatorProcess, python: Path, cwd: Path, impl: str, n: int, scenario: str, runs: int,
    log: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    log(f"triggers: {impl} n={n} {scenario} x{runs}")
    samples: list[dict[str, Any]] = []
    error = None
    for _ in range(runs):
        try:
            samples.append(measure_once(emulator, python, cwd, impl, n, scenario == "faults"))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            log(f"triggers: {impl} n={n} {scenario} failed: {error.splitlines()[0]}")
            break
    case: dict[str, Any] = {"impl": impl, "n": n, "scenario": scenario, "samples": samples, "error": error}
    for metric in METRICS:
        values = [s[metric] for s in samples if isinstance(s.get(metric), int | float)]
        case[metric] = summarize([float(v) for v in values if not math.isnan(v)])
    return case
