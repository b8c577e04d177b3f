"""Run one command in a fresh process and measure it: wall time, CPU time and peak RSS.

Peak RSS comes from ``wait4``'s resource usage, which covers the child and every descendant it
waited for: the largest resident set among them, which is what sizes a worker slot.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    output_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float,
    tail_chars: int = 20000,
) -> Measurement:
    """Run ``command`` to completion (killing its process group after ``timeout_s``) and measure it.

    Output goes to a temporary file rather than a pipe, so a chatty child never blocks on a full
    pipe and reading it costs the measured process nothing.
    """
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        status, rusage = _wait(proc, timeout_s)
        wall = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
    return Measurement(
        wall_s=wall,
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        peak_rss_mb=rusage.ru_maxrss / 1024,  # Linux reports KiB
        returncode=returncode,
        output_tail=output[-tail_chars:],
    )


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, resource.struct_rusage]:
    """Blocking ``wait4`` (so wall time is exact) with a timer that kills the group at the deadline."""
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (None if timed_out.is_set() else status), rusage
