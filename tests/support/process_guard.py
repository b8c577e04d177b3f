"""Nothing we start outlives us: termination signals unwind the stack, started processes are on record.

Why: a Python process ended by SIGTERM (``timeout``, a process supervisor, ``kill``, CI's time
limit) or SIGHUP (a closed terminal) dies on the spot by default: no ``finally``, no ``with`` exit,
no ``atexit`` runs, so every Airflow component it started in a session of its own lives on,
re-parented to init and holding its ports. Started in the background by a non-interactive shell,
a process also inherits SIGINT ignored, so Ctrl-C's signal does nothing either.

:func:`raise_on_signals` turns each of these signals into :class:`Terminated`, raised once in the
main thread: the ``with`` blocks, ``finally`` clauses and pytest fixtures that started processes
stop them on the way out. ``Terminated`` is a ``KeyboardInterrupt``, so pytest ends the session
(tearing down its fixtures) exactly as on Ctrl-C, and code that already handles Ctrl-C handles
SIGTERM and SIGHUP too. Signals arriving during that cleanup are reported, not raised, so they
cannot cut it short.

:func:`record_started` keeps a record of the processes we start (and, when ``ADP_PROCESS_RECORD``
names a file, appends it there as JSON lines) for the one-line report :func:`stop_report` and for
the tests that end us from outside and check nothing is left. This module imports nothing from
Airflow or pytest: ``make demo`` uses it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from types import FrameType

import psutil

#: The signals that end a run from outside: Ctrl-C, ``kill``/supervisors/CI, a closed terminal.
TERMINATION_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Environment variable naming a file that :func:`record_started` appends each process to.
RECORD_ENV = "ADP_PROCESS_RECORD"


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; raised in the main thread so cleanup code runs."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"terminated by {self.signame}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


@dataclass
class _State:
    installed_by: int | None = None  # pid that installed the handlers (a fork must not inherit them)
    received: int | None = None  # the first termination signal, once it arrived
    deferring: int = 0  # depth of signals_deferred() blocks
    pending: bool = False  # the first signal arrived inside signals_deferred(): raise on leaving it


_state = _State()


def raise_on_signals(signals: Iterable[signal.Signals] = TERMINATION_SIGNALS) -> None:
    """Make each of ``signals`` raise :class:`Terminated` once, in the main thread.

    Installed explicitly, whatever the inherited disposition: SIGINT inherited as ignored (a
    background job of a non-interactive shell) is handled like the rest. Must run in the main
    thread (Python delivers signals only there); raises ``RuntimeError`` otherwise.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("raise_on_signals() must be called from the main thread")
    _state.installed_by = os.getpid()
    for signum in signals:
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _state.installed_by:
        # A forked child inherited the handler: behave as if it had never been installed there.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state.received is not None:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone: never raise here
            print(
                f"{signal.Signals(signum).name} received while stopping after "
                f"{signal.Signals(_state.received).name}; still stopping what was started",
                file=sys.stderr,
                flush=True,
            )
        return
    _state.received = signum
    if _state.deferring:
        _state.pending = True
        return
    raise Terminated(signum)


def terminated_by() -> str | None:
    """The name of the termination signal that arrived, if one did."""
    return signal.Signals(_state.received).name if _state.received is not None else None


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold :class:`Terminated` back until the block ends.

    For the moment between fork and ``Popen`` returning: raised there, the exception would leave a
    started process nobody has a handle on, so nobody could stop it.
    """
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
        if not _state.deferring and _state.pending:
            _state.pending = False
            assert _state.received is not None
            raise Terminated(_state.received)


@dataclass(frozen=True)
class StartedProcess:
    """A process we started, identified by pid *and* start time (pids get reused)."""

    name: str
    pid: int
    pgid: int
    sid: int
    create_time: float

    def alive(self) -> bool:
        """True while this very process (not a later one with the same pid) runs (zombies don't count)."""
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.create_time and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> StartedProcess:
        return cls(**json.loads(line))


@dataclass(frozen=True)
class _Service:
    name: str
    running: Callable[[], bool]


_started: dict[tuple[int, float], StartedProcess] = {}
_services: list[_Service] = []
_lock = threading.Lock()


def record_started(name: str, pid: int) -> StartedProcess | None:
    """Record process ``pid`` (labelled ``name``) as one we started; ``None`` if it is already gone."""
    try:
        proc = psutil.Process(pid)
        entry = StartedProcess(name, pid, os.getpgid(pid), os.getsid(pid), proc.create_time())
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None
    with _lock:
        if (pid, entry.create_time) in _started:
            return entry
        _started[(pid, entry.create_time)] = entry
        path = os.environ.get(RECORD_ENV)
        if path:
            with open(path, "a") as record:
                record.write(entry.to_json() + "\n")
    return entry


def stop_group(proc: subprocess.Popen[bytes], sig: int, *, timeout: float) -> None:
    """Signal a server we started in its own session (its whole group), SIGKILL after ``timeout`` s.

    The group, not the pid: ``runuser`` (PostgreSQL as root) does not forward signals to its child.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def record_service(name: str, running: Callable[[], bool]) -> None:
    """Record an in-process service (e.g. the dbt Cloud emulator) for :func:`stop_report`."""
    with _lock:
        _services.append(_Service(name, running))


def started() -> list[StartedProcess]:
    """Every process recorded so far, in start order."""
    with _lock:
        return list(_started.values())


def read_record(path: os.PathLike[str] | str) -> list[StartedProcess]:
    """The processes a run recorded in the ``ADP_PROCESS_RECORD`` file ``path``."""
    with open(path) as record:
        return [StartedProcess.from_json(line) for line in record if line.strip()]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``host:port`` (a socket left in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def stop_report() -> str:
    """One line: what was started and stopped, and loudly whatever still runs."""
    processes = started()
    with _lock:
        services = list(_services)
    left = [p for p in processes if p.alive()] + [s for s in services if s.running()]
    groups: dict[str, int] = {}
    for process in processes:
        groups[process.name] = groups.get(process.name, 0) + 1
    parts = [name if count == 1 else f"{name} ({count} processes)" for name, count in groups.items()]
    parts += [service.name for service in services]
    if not parts:
        return "nothing was started"
    stopped = f"stopped {len(processes)} processes: " if processes else "stopped "
    line = stopped + ", ".join(parts)
    if left:
        names = ", ".join(f"{p.name} pid {p.pid}" if isinstance(p, StartedProcess) else p.name for p in left)
        line += f" - STILL RUNNING: {names}"
    return line
