"""A helper process spoken to in JSON lines over its stdin/stdout (the emulator, the harness).

Both sides of the benchmarks that run in a process of their own need the same two things: read
one line without hanging forever when the child dies or stalls, and stop the child by closing its
stdin (killing it if it does not exit).
"""

from __future__ import annotations

import subprocess
import threading


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str | None:
    """One line of the child's stdout, or ``None`` if it said nothing within ``timeout_s`` or exited."""
    stdout = proc.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return box[0] if box and box[0] else None


def stop(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> None:
    """Close the child's stdin (its signal to exit); kill it if it is still running after ``timeout_s``."""
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
