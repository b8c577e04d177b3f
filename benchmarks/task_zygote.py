"""The local dbt benchmark's harness: an Airflow imported once that forks one process per task run.

Why: a cold ``airflow tasks test`` spends about 16 s here before the task starts, the same for
every arm: 4 s importing Airflow, the rest building the in-process execution API (FastAPI routes
for every API version, generated on the first request). At the ~240 runs ``make bench`` makes,
that alone would be over an hour, and it would dilute every ratio with a cost no deployment pays
per task (there the execution API is the long-running API server).

So this process (run as a script, ``python benchmarks/task_zygote.py``) imports Airflow's core,
the Task SDK and the execution API, builds the API app once (so each child's in-process API
reuses it instead of building its own), and then, per run, forks a child that
runs exactly ``airflow tasks test <dag> <task>`` through Airflow's CLI entry point, in process.
The child parses the arm's DAG file, imports the arm's library and dbt itself, and runs the task
with the real task runner and the real (in-process) execution API on a real SQLite database.
Nothing an arm uses is imported here (no provider, no dbt), so every arm pays its own imports.
What the harness still costs is measured by the benchmark's *baseline* arm (an empty task).

Protocol, one JSON object per line. This process says ``{"ready": true}`` once warm. The parent
sends ``{"argv": [...], "env": {...}, "log": path, "timeout_s": s}``; the child applies ``env`` on
top of this process's environment and writes its output to ``log``; the answer is ``{"status":
exit code, "wall_s", "cpu_s", "maxrss_kb", "timed_out"}`` from ``wait4`` (the child and every
process it waited for). Wall time runs from the fork to the child's exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

READY_TIMEOUT_S = 300.0


# --- parent side --------------------------------------------------------------------------------


class Zygote:
    """Start the warm Airflow process, hand it runs, stop it (a context manager)."""

    def __init__(self, python: Path, *, env: Mapping[str, str], cwd: Path, stderr_path: Path) -> None:
        self._command = [str(python), str(Path(__file__).resolve())]
        self._env = dict(env)
        self._cwd = cwd
        self._stderr_path = stderr_path
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> Zygote:
        self._stderr = self._stderr_path.open("wb")
        self._proc = subprocess.Popen(
            self._command, env=self._env, cwd=self._cwd, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )  # fmt: skip
        if self._answer(READY_TIMEOUT_S).get("ready") is not True:
            raise RuntimeError(f"the harness did not start; see {self._stderr_path}")
        return self

    def __exit__(self, *exc: object) -> None:
        from benchmarks.child import stop  # parent side only: the zygote runs as a plain script

        if self._proc is not None:
            stop(self._proc)
        if self._stderr is not None:
            self._stderr.close()

    def run(self, argv: list[str], *, env: Mapping[str, str], log: Path, timeout_s: float) -> dict[str, Any]:
        """One forked run of ``airflow <argv>``; its resource usage as the zygote measured it."""
        assert self._proc is not None, "harness not started"
        assert self._proc.stdin is not None
        request = {"argv": argv, "env": dict(env), "log": str(log), "timeout_s": timeout_s}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._answer(timeout_s + 60)

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        from benchmarks.child import read_line

        assert self._proc is not None
        line = read_line(self._proc, timeout_s)
        if line is None or not line.strip():
            raise RuntimeError(f"the harness did not answer; see {self._stderr_path}")
        answer: dict[str, Any] = json.loads(line)
        return answer


# --- the zygote ---------------------------------------------------------------------------------


def _preload() -> None:
    """What every arm's ``airflow tasks test`` loads before its DAG file: Airflow, SDK, execution API."""
    import airflow
    import airflow.__main__
    import airflow.api_fastapi.execution_api.routes
    import airflow.cli.commands.task_command
    import airflow.models
    import airflow.sdk
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    from airflow import settings
    from airflow.api_fastapi.execution_api import app as execution_api
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    # Built once, its versioned routes generated: every child's in-process API gets this app from
    # the factory it calls (and sets its own DAG bag and auth overrides on it, as it would anyway).
    prebuilt = execution_api.InProcessExecutionAPI().app
    prebuilt._cadwyn_initialize()
    execution_api.create_task_execution_api_app = lambda *args, **kwargs: prebuilt
    # No connection a child could inherit, no thread a fork would leave half-copied.
    if settings.engine is not None:
        settings.engine.dispose()
    if threading.active_count() != 1:
        raise RuntimeError(f"threads running before fork: {threading.enumerate()}")


def _child(argv: list[str], env: Mapping[str, str], log_path: str) -> None:
    """In the forked child: its environment and log, then Airflow's CLI as ``airflow <argv>``."""
    os.setsid()
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # not the protocol pipe
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        from airflow.__main__ import main

        sys.argv = ["airflow", *argv]
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run(request: dict[str, Any]) -> dict[str, Any]:
    timeout_s = float(request["timeout_s"])
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child([str(a) for a in request["argv"]], request.get("env") or {}, str(request["log"]))
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(pid, 0)
    finally:
        timer.cancel()
        timer.join()
    return {
        "status": os.waitstatus_to_exitcode(status),
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
        "timed_out": timed_out.is_set(),
    }


def main() -> None:
    # Run as a script: its own folder is sys.path[0], and its neighbours (venv.py, stats.py, ...)
    # must not shadow the modules an arm imports.
    sys.path.pop(0)
    _preload()
    out = sys.stdout
    sys.stdout = sys.stderr  # anything printed here must not corrupt the protocol
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run(json.loads(line))), file=out, flush=True)


if __name__ == "__main__":
    main()
