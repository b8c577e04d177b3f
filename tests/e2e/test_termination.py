"""Ending ``make demo`` or a pytest run with a signal leaves no process of theirs behind (issue 19).

Each test starts the real thing in child processes - ``scripts/demo.py``, or pytest holding the
e2e suite's shared deployment (``termination_probe.py``) - waits until a child has spawned every
component (or reports its deployment up), ends it with one signal the way ``kill``, a CI time
limit, a closed terminal or Ctrl-C would, and then checks from outside: no process the child
started is alive (by pid and start time, from the child's own record and from a snapshot of its
process tree), no process is left in any process group or session those processes had, and
every port they listened on is free. SIGINT is sent to a child started with SIGINT ignored, as
a background job of a non-interactive shell is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from e2e.termination_probe import READY_ENV
from support.airflow_deployment import COMPONENTS
from support.process_guard import RECORD_ENV, StartedProcess, port_in_use, read_record

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "termination_probe.py"
#: Each signal once, in this order: SIGHUP and SIGINT while the deployment is still starting (every
#: component spawned, none healthy yet), SIGTERM once it is up and busy - two paths through the
#: cleanup. A test starts its children all at once, so the later ones start while the first end.
CASES: tuple[tuple[signal.Signals, str], ...] = (
    (signal.SIGHUP, "starting"),
    (signal.SIGINT, "starting"),
    (signal.SIGTERM, "up"),
)
#: Generous: the machine is shared; a pass takes a fraction of these.
UP_TIMEOUT = 300.0
EXIT_TIMEOUT = 120.0
GONE_TIMEOUT = 30.0


@dataclass
class Child:
    """A child process whose combined output is collected line by line in the background."""

    proc: subprocess.Popen[str]
    record: Path
    lines: list[str] = field(default_factory=list)
    snapshot: list[StartedProcess] = field(default_factory=list)
    ended: float | None = None  # time.time() when it was seen to exit
    _new_line: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def recorded(self) -> list[StartedProcess]:
        """The processes the child recorded starting (``ADP_PROCESS_RECORD``)."""
        return read_record(self.record) if self.record.exists() else []

    def output(self) -> str:
        with self._new_line:
            return "\n".join(self.lines)

    def wait_for_record(self, names: set[str], timeout: float) -> None:
        """Wait until the child has recorded starting a process under each of ``names``."""
        deadline = time.monotonic() + timeout
        while not names <= {p.name for p in self.recorded()}:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the child never recorded starting {sorted(names)}:\n{self.output()}")
            time.sleep(0.1)

    def wait_for_path(self, path: Path, timeout: float) -> None:
        """Wait until the child has created ``path``."""
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the child never created {path}:\n{self.output()}")
            time.sleep(0.1)

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first output line starting with ``prefix``; fails if the child exits first."""
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                found = next((line for line in self.lines if line.startswith(prefix)), None)
                if found is not None:
                    return found
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    break
                self._new_line.wait(timeout=1.0)
        code = self.proc.poll()
        pytest.fail(f"no line starting {prefix!r} from the child (exit code {code}):\n{self.output()}")


def start_child(argv: list[str], *, cwd: Path, record: Path, ignore_sigint: bool, **env: str) -> Child:
    """Start ``argv`` in its own session (so our signal reaches it alone), SIGINT ignored if asked.

    Ignoring SIGINT goes through a shell's ``trap '' INT`` and ``exec``, as a script that starts
    the demo in the background would leave it.
    """
    if ignore_sigint:
        argv = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *argv]
    ours = ("AIRFLOW", "PYTEST", RECORD_ENV)  # the suite's Airflow home and pytest state stay ours
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    child_env.update({RECORD_ENV: str(record), "PYTHONUNBUFFERED": "1", **env})
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return Child(proc, record)


@dataclass
class Snapshot:
    """Every process in the child's tree at one moment, and every TCP port they listened on."""

    processes: list[StartedProcess]
    ports: set[int]

    @classmethod
    def of_tree(cls, pid: int) -> Snapshot:
        root = psutil.Process(pid)
        processes: list[StartedProcess] = []
        ports: set[int] = set()
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                pid = proc.pid
                processes.append(
                    StartedProcess(proc.name(), pid, os.getpgid(pid), os.getsid(pid), proc.create_time())
                )
                listening = [c for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
                ports |= {c.laddr.port for c in listening}
        return cls(processes, ports)


def leftover_processes(processes: list[StartedProcess], ended: float) -> list[psutil.Process]:
    """Live processes among ``processes``, or in a group or session one of them had.

    Only processes created before the child ``ended`` (a ``time.time()``) count: on this machine
    pids wrap within minutes, and a stranger may have become leader of a group with a freed id.
    """
    left: dict[int, psutil.Process] = {}
    for process in processes:
        if process.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                left[process.pid] = psutil.Process(process.pid)
    groups = {p.pgid for p in processes} | {p.sid for p in processes}
    groups -= {os.getsid(0), os.getpgid(0)}  # never the test's own session or group
    for proc in psutil.process_iter(["status", "create_time"]):
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.info["create_time"] > ended:
                continue
            if os.getpgid(proc.pid) in groups or os.getsid(proc.pid) in groups:
                left[proc.pid] = proc
    left.pop(os.getpid(), None)
    return list(left.values())


def held_ports(ports: set[int], ended: float) -> list[int]:
    """Those of ``ports`` something created before the child ``ended`` still listens on."""

    def stranger(pid: int | None) -> bool:
        with contextlib.suppress(psutil.NoSuchProcess):
            return pid is not None and psutil.Process(pid).create_time() > ended
        return True  # gone by now

    held = []
    for port in sorted(ports):
        if port_in_use(port):
            listeners = [
                c.pid
                for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]
            if not listeners or not all(stranger(pid) for pid in listeners):
                held.append(port)
    return held


def leftovers(processes: list[StartedProcess], ports: set[int], ended: float) -> list[str]:
    """What is still there: the processes, anything in their groups or sessions, their ports."""
    left = []
    for proc in leftover_processes(processes, ended):
        with contextlib.suppress(psutil.NoSuchProcess):
            left.append(f"pid {proc.pid}: {' '.join(proc.cmdline()) or proc.name()}")
    return sorted(left) + [f"a listener on port {port}" for port in held_ports(ports, ended)]


def wait_until_nothing_left(processes: list[StartedProcess], ports: set[int], ended: float) -> list[str]:
    """What is still there once it had time to go: a SIGKILLed orphan takes a moment to vanish."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while (left := leftovers(processes, ports, ended)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_everything(processes: list[StartedProcess], ended: float) -> None:
    """The test's own safety net: SIGKILL whatever a failing child left, so no test leaks it on."""
    for proc in leftover_processes(processes, ended):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def end_and_check(child: Child, sig: signal.Signals) -> Snapshot:
    """Snapshot the child's tree, send ``sig``, wait for the child to exit, then check for leftovers."""
    snapshot = Snapshot.of_tree(child.proc.pid)
    child.snapshot = snapshot.processes
    child.proc.send_signal(sig)
    try:
        child.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child did not exit within {EXIT_TIMEOUT:.0f}s of {sig.name}:\n{child.output()}")
    child.ended = time.time()
    recorded = child.recorded()
    assert recorded, f"the child recorded no started process:\n{child.output()}"
    left = wait_until_nothing_left(snapshot.processes + recorded, snapshot.ports, child.ended)
    assert not left, f"left behind after {sig.name}: {left}\n{child.output()}"
    return snapshot


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """The children a test starts; whatever a failing one left is SIGKILLed, so no test leaks it on."""
    started: list[Child] = []
    yield started
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(timeout=30)
        kill_everything(child.snapshot + child.recorded(), child.ended or time.time())


def demo_checkout(tmp_path: Path) -> Path:
    """A tree that looks like the repository but whose ``.demo/`` is ``tmp_path``'s, not the user's.

    ``scripts/demo.py`` keeps its state next to itself, in ``<repository>/.demo``, and wipes it at
    start: it is copied unchanged; everything else is linked to the real repository.
    """
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name not in {"scripts", ".demo", ".git"}:
            (root / entry.name).symlink_to(entry)
    for entry in (REPO / "scripts").iterdir():
        if entry.name == "demo.py":
            shutil.copy2(entry, root / "scripts" / entry.name)
        else:
            (root / "scripts" / entry.name).symlink_to(entry)
    return root


def test_demo_stops_everything_it_started(children: list[Child], tmp_path: Path) -> None:
    """SIGHUP/SIGINT while the demo starts Airflow, SIGTERM while it runs the DAGs: all of it stops."""
    for sig, _ in CASES:
        root = demo_checkout(tmp_path / sig.name)  # each its own: the demo keeps its state next to itself
        children.append(
            start_child(
                [sys.executable, str(root / "scripts" / "demo.py")],
                cwd=root,
                record=tmp_path / f"{sig.name}.jsonl",
                ignore_sigint=sig == signal.SIGINT,
            )
        )
    for child, (sig, phase) in zip(children, CASES, strict=True):
        if phase == "up":
            child.wait_for_line("Airflow UI:", UP_TIMEOUT)
        else:
            child.wait_for_record(set(COMPONENTS), UP_TIMEOUT)
        snapshot = end_and_check(child, sig)
        # The snapshot saw the deployment: the four components, each in a session of its own.
        assert len({p.sid for p in snapshot.processes}) >= 5, (sig.name, snapshot.processes)
        if phase == "up":  # the emulator, the api-server and the log servers listen
            assert len(snapshot.ports) >= 3, snapshot.ports
        assert child.proc.returncode == 128 + sig, child.output()
        report = child.wait_for_line(f"demo (ended by {sig.name}): stopped ", 0)
        assert all(name in report for name in (*COMPONENTS, "dbt Cloud emulator")), report
        assert "STILL RUNNING" not in report, report


def test_pytest_ended_by_signal_stops_the_e2e_deployment(children: list[Child], tmp_path: Path) -> None:
    """pytest holding the shared e2e deployment (PostgreSQL + Airflow) tears it down on SIGHUP/SIGTERM."""
    cases = [(sig, phase) for sig, phase in CASES if sig != signal.SIGINT]  # pytest handles SIGINT itself
    for sig, _ in cases:
        children.append(
            start_child(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(PROBE)],
                cwd=REPO,
                record=tmp_path / f"{sig.name}.jsonl",
                ignore_sigint=False,
                **{READY_ENV: str(tmp_path / f"{sig.name}.ready")},
            )
        )
    for child, (sig, phase) in zip(children, cases, strict=True):
        if phase == "up":
            child.wait_for_path(tmp_path / f"{sig.name}.ready", UP_TIMEOUT)
        else:
            child.wait_for_record({"postgres", *COMPONENTS}, UP_TIMEOUT)
        snapshot = end_and_check(child, sig)
        assert "postgres" in {p.name for p in snapshot.processes}, snapshot.processes
        # PostgreSQL and the four components, each in a session of its own.
        assert len({p.sid for p in snapshot.processes}) >= 6, (sig.name, snapshot.processes)
        assert child.proc.returncode == pytest.ExitCode.INTERRUPTED, child.output()
