"""support/process_guard.py: a termination signal unwinds the stack once, and never cuts cleanup short.

Each scenario runs in a fresh interpreter: the suite's own process has the handlers installed
(tests/conftest.py), and a signal sent to it would end the session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from support.process_guard import read_record

TESTS = Path(__file__).resolve().parent.parent


def run(script: str, *, ignore_sigint: bool = False) -> subprocess.CompletedProcess[str]:
    prelude = "import os, signal, sys, time\nfrom support import process_guard\n"
    argv = [sys.executable, "-c", prelude + textwrap.dedent(script)]
    if ignore_sigint:
        argv = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *argv]
    return subprocess.run(argv, cwd=TESTS, capture_output=True, text=True, timeout=60, check=False)


def test_each_signal_raises_terminated_even_sigint_inherited_as_ignored() -> None:
    result = run(
        """
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        process_guard.raise_on_signals()
        for sig in process_guard.TERMINATION_SIGNALS:
            process_guard._state.received = None
            try:
                os.kill(os.getpid(), sig)
                time.sleep(10)
            except process_guard.Terminated as exc:
                print(exc.signame, exc.exit_code, isinstance(exc, KeyboardInterrupt))
        """,
        ignore_sigint=True,
    )
    assert result.stdout.split("\n")[:3] == ["SIGINT 130 True", "SIGTERM 143 True", "SIGHUP 129 True"], result


def test_signals_during_cleanup_are_reported_not_raised() -> None:
    result = run(
        """
        process_guard.raise_on_signals()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        except process_guard.Terminated:
            os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            print("cleanup finished after", process_guard.terminated_by())
        """
    )
    assert result.returncode == 0, result
    assert result.stdout == "cleanup finished after SIGTERM\n"
    assert "SIGHUP received while stopping after SIGTERM" in result.stderr
    assert "SIGINT received while stopping after SIGTERM" in result.stderr


def test_signal_inside_signals_deferred_is_raised_when_the_block_ends() -> None:
    result = run(
        """
        process_guard.raise_on_signals()
        try:
            with process_guard.signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                print("block finished")
            print("not reached")
        except process_guard.Terminated as exc:
            print("raised after the block:", exc.signame)
        """
    )
    assert result.stdout == "block finished\nraised after the block: SIGTERM\n", result


def test_a_forked_child_dies_by_the_signal_as_without_the_handler() -> None:
    result = run(
        """
        process_guard.raise_on_signals()
        ready, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(ready_w, b"x")  # a signal before this point would be dropped by fork itself
            time.sleep(30)
            os._exit(0)
        os.read(ready, 1)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
        """
    )
    assert result.stdout == "True\n", result


def test_record_and_stop_report(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    result = run(
        f"""
        import subprocess
        os.environ[process_guard.RECORD_ENV] = {str(record)!r}
        sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
        for proc in sleepers:
            process_guard.record_started("sleeper", proc.pid)
        process_guard.record_started("sleeper", sleepers[0].pid)  # recorded once
        process_guard.record_service("a service", lambda: True)
        sleepers[0].kill()
        sleepers[0].wait()
        print(process_guard.stop_report())
        sleepers[1].kill()
        """
    )
    assert result.stdout == (
        f"stopped 2 processes: sleeper (2 processes), a service - STILL RUNNING: sleeper pid "
        f"{read_record(record)[1].pid}, a service\n"
    ), result
