"""Run dbt as a child process, for users whose dbt cannot live in Airflow's virtualenv.

:class:`SubprocessDbtRunner` has the same ``invoke(args, capture=..., **overrides)`` contract as
:class:`~airflow_dbt_provider.core.runner.DbtRunner` and returns the same
:class:`~airflow_dbt_provider.core.results.DbtResult`, so operators switch between the two with
one argument (``dbt_executable``):

* dbt runs with ``--log-format json`` and every line is parsed and handed to the same
  :class:`~airflow_dbt_provider.core.events.DbtEventLogger` the in-process runner uses, so levels,
  skipped events, colour stripping and secret redaction are identical;
* the outcome comes from ``run_results.json`` (per-node results) and the exit code (0 success,
  1 handled failure, anything else dbt could not run the command);
* dbt gets its own process group, so :meth:`SubprocessDbtRunner.terminate` stops dbt *and* any
  process it started (dbt-duckdb plugins, Python models) — what ``on_kill`` needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

from airflow_dbt_provider.core.errors import DbtCommandFailedError, DbtConfigurationError, DbtInvocationError
from airflow_dbt_provider.core.project_run import (
    Invocation,
    ProjectRunner,
    Request,
    RunnerOptions,
)
from airflow_dbt_provider.core.results import DbtResult, NodeResult, redacted

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: dbt's exit codes (``dbt.cli.exceptions``): 0 success, 1 handled failure, 2 unhandled error.
EXIT_SUCCESS = 0
EXIT_FAILURE = 1
#: Events whose message is the command's answer (``dbt ls`` prints each resource as a ``PrintEvent``).
_OUTPUT_EVENTS = frozenset({"ListCmdOut", "PrintEvent"})
#: Seconds dbt gets to exit after SIGINT (cancelling its queries) before its process group is killed.
TERMINATE_GRACE = 10.0


class DbtSubprocessError(RuntimeError):
    """dbt exited with an unhandled error; the message is dbt's last error lines (redacted)."""


class SubprocessDbtRunner(ProjectRunner):
    """Run dbt commands with a dbt executable from another virtualenv.

    :param dbt_executable: path to the ``dbt`` script (e.g. ``/opt/dbt-venv/bin/dbt``).
    :param project_dir: the dbt project (the directory holding ``dbt_project.yml``).
    :param options: the options both runners share, see
        :class:`~airflow_dbt_provider.core.project_run.RunnerOptions`; ``env`` goes to the dbt
        process only, and ``install_deps`` runs ``dbt deps`` with this executable.
    """

    def __init__(
        self,
        dbt_executable: str | os.PathLike[str],
        project_dir: str | os.PathLike[str],
        **options: Unpack[RunnerOptions],
    ) -> None:
        self.dbt_executable = _executable(dbt_executable)
        super().__init__(project_dir, **options)
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._terminated = False

    def _describe(self) -> list[str]:
        return [f"dbt_executable={str(self.dbt_executable)!r}"]

    # -- public API -----------------------------------------------------------------------------

    def terminate(self, grace: float = TERMINATE_GRACE) -> bool:
        """Stop the running dbt and every process it started; ``False`` when nothing was running.

        SIGINT goes to the whole process group first: dbt treats it as Ctrl-C and cancels its open
        warehouse queries (a plain SIGTERM would leave them running on the server). Whatever is
        still alive after ``grace`` seconds gets SIGKILL. Safe to call from a signal handler or
        another thread.
        """
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                return False
            self._terminated = True
        self.logger.warning("Stopping dbt (process group %d)", process.pid)
        _signal_group(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.logger.warning("dbt did not stop within %.0fs; killing its process group", grace)
        # Children dbt started may outlive dbt itself (or ignore SIGINT): the group goes in any case.
        _signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        return True

    # -- one invocation -------------------------------------------------------------------------

    RESERVED_OVERRIDES = (*ProjectRunner.RESERVED_OVERRIDES, "profiles_dir")

    def _execute(self, request: Request, project_dir: Path, invocation: Invocation) -> DbtResult:
        """Run dbt in a child process; ``overrides`` become CLI options (``--full-refresh``)."""
        argv = request.argv
        full = [str(self.dbt_executable), *argv, *self._options(request.overrides)]
        self.events.reset()
        self.logger.info("Running %s", self.events.clean(shlex.join([self.dbt_executable.name, *argv])))
        returncode, output = self._run(full, self._environment(project_dir, invocation))
        if self._terminated:
            raise DbtInvocationError(request.command, DbtSubprocessError("dbt was terminated (on_kill)"))
        artifacts = self._keep_artifacts(invocation)
        return self._result(
            request.command, returncode, output, invocation.target_path, request.elapsed(), artifacts
        )

    def _options(self, overrides: Mapping[str, Any]) -> list[str]:
        """CLI options from dbt parameter names (the runner-owned settings go through the env)."""
        params: dict[str, Any] = {}
        if self.vars:
            params["vars"] = self.vars
        params.update(overrides)
        return [word for name, value in params.items() for word in cli_option(name, value)]

    def _environment(self, project_dir: Path, invocation: Invocation) -> dict[str, str]:
        """The child's environment: ours, the runner's ``env``, and dbt's own settings.

        The runner's settings go through dbt's ``DBT_*`` variables rather than options because
        not every command accepts every option (``dbt deps`` has no ``--target-path``), while
        every command ignores variables it does not use.
        """
        env = {**os.environ, **self.env}
        env.update(
            {
                "DBT_LOG_FORMAT": "json",
                "DBT_USE_COLORS": "False",
                "DBT_PROJECT_DIR": str(project_dir),
                "DBT_PROFILES_DIR": str(self.profiles_dir),
                "DBT_TARGET_PATH": str(invocation.target_path),
                "DBT_LOG_PATH": str(invocation.log_path),
                "DBT_LOG_LEVEL_FILE": "debug" if self.artifacts_dir is not None else "none",
            }
        )
        for name, value in (("DBT_TARGET", self.target), ("DBT_PROFILE", self.profile)):
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        env.update(self._tracking_env())
        return env

    def _run(self, argv: list[str], env: Mapping[str, str]) -> tuple[int, list[str]]:
        """Start dbt in a new process group, log its lines as they come; return (exit code, output)."""
        with self._lock, _children_start_with_default_sigint(self.logger):
            self._terminated = False
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.project_dir,
                env=dict(env),
                start_new_session=True,  # own process group: terminate() reaches dbt's children too
            )
            self._process = process
        output: list[str] = []
        # dbt's output is drained by a thread of its own, never by the thread that waits: Airflow
        # runs on_kill (terminate()) in the main thread's signal handler, and if that thread were
        # the reader, dbt could block writing its cancellation lines to a full pipe and be killed
        # before it cancelled its queries.
        assert process.stdout is not None
        pump = threading.Thread(
            target=self._pump, args=(process.stdout, output), name="dbt-output", daemon=True
        )
        pump.start()
        try:
            code = process.wait()
            pump.join()
            return code, output
        finally:
            if process.poll() is None:  # interrupted while waiting (e.g. KeyboardInterrupt)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            pump.join(timeout=TERMINATE_GRACE)
            with self._lock:
                self._process = None

    def _pump(self, stdout: IO[bytes], output: list[str]) -> None:
        """Read dbt's stdout to the end, handling each line (runs on the ``dbt-output`` thread)."""
        for raw in stdout:
            try:
                self._handle_line(raw.decode("utf-8", errors="replace"), output)
            except Exception:  # a line we cannot handle must not stop the draining
                self.logger.exception("could not handle a line of dbt's output")

    def _handle_line(self, line: str, output: list[str]) -> None:
        """One line of dbt's stdout: a JSON event (the normal case) or plain text (a crash)."""
        if not line.strip():
            return
        event = parse_json_event(line)
        if event is None:
            # Not an event: e.g. a Python traceback before dbt's logging was set up.
            text = self.events.clean(line.rstrip())
            self.logger.warning("%s", text)
            self.events.errors.append(text.strip())
            return
        if event.info.name in _OUTPUT_EVENTS:
            output.append(event.info.msg)
        self.events(event)

    def _result(
        self,
        command: str,
        returncode: int,
        output: list[str],
        target_path: Path,
        elapsed: float,
        artifacts: Mapping[str, Path],
    ) -> DbtResult:
        """The typed result: nodes from ``run_results.json``, success from the exit code.

        Exit code 1 is dbt's handled failure (failed nodes, a ``debug`` that cannot connect): a
        result with ``success=False``, as in process.
        """
        run_results = target_path / "run_results.json"
        nodes = node_results(json.loads(run_results.read_bytes())) if run_results.is_file() else ()
        nodes = redacted(nodes, self.events.clean)  # they can quote SQL or connection errors
        if returncode not in (EXIT_SUCCESS, EXIT_FAILURE):
            # dbt's "unhandled" exit (2), or killed by a signal: the in-process runner's exception case.
            detail = "; ".join(self.events.errors[-5:]) or f"dbt exited with code {returncode}"
            raise DbtInvocationError(command, DbtSubprocessError(detail), redact=self.events.clean)
        return DbtResult(
            command=command,
            success=returncode == EXIT_SUCCESS,
            nodes=nodes,
            elapsed=elapsed,
            artifacts=dict(artifacts),
            error_messages=tuple(self.events.errors),
            output=_command_output(command, returncode, output),
        )

    def _install_packages(self, mirror: Path) -> None:
        self.logger.info("Installing the packages of %s (dbt deps)", self.project_dir)
        installer = SubprocessDbtRunner(
            self.dbt_executable,
            mirror,
            profiles_dir=self.profiles_dir,
            env=self.env,
            logger=self.logger,
            send_anonymous_usage_stats=self.send_anonymous_usage_stats,
        )
        installer.events = self.events
        result = installer.invoke(["deps"])
        if not result.success:
            raise DbtCommandFailedError(result)

    def _mirror_version(self) -> str:
        """Keys the package mirror: the executable, so two dbt installs never share one."""
        return f"subprocess:{self.dbt_executable.resolve()}"


# -- helpers (public ones are tested directly) -------------------------------------------------------


def cli_option(name: str, value: Any) -> list[str]:
    """A dbt parameter by its Python name as CLI words: ``full_refresh=True`` → ``--full-refresh``.

    Booleans become ``--flag``/``--no-flag``, sequences repeat their values after one option
    (``--select a b``), mappings (``vars``, ``args``) are passed as JSON, which dbt reads as YAML.
    """
    if value is None:
        return []
    flag = "--" + name.replace("_", "-")
    if name == "resource_types":
        flag = "--resource-type"
    elif name == "exclude_resource_types":
        flag = "--exclude-resource-type"
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + flag[2:]]
    if isinstance(value, Mapping):
        return [flag, json.dumps(value, default=str)]
    if isinstance(value, (list, tuple, set, frozenset)):
        values = [str(v) for v in value]
        if not values:
            return []
        if name in ("resource_types", "exclude_resource_types"):
            return [word for v in values for word in (flag, v)]
        return [flag, *values]
    return [flag, str(value)]


def parse_json_event(line: str) -> Any:
    """One ``--log-format json`` line as an object shaped like dbt's ``EventMsg`` (or ``None``).

    Only ``info.name``, ``info.level`` and ``info.msg`` are read downstream, which is what lets
    the subprocess mode reuse :class:`DbtEventLogger` unchanged.
    """
    try:
        data = json.loads(line)
    except ValueError:
        return None
    info = data.get("info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or "msg" not in info:
        return None
    return SimpleNamespace(
        info=SimpleNamespace(
            name=str(info.get("name", "")),
            level=str(info.get("level", "info")),
            msg=str(info.get("msg") or ""),
        ),
        data=data.get("data") or {},
    )


def node_results(run_results: Mapping[str, Any]) -> tuple[NodeResult, ...]:
    """Per-node results from a parsed ``run_results.json`` (any schema version since v4)."""
    return tuple(NodeResult.from_json(item) for item in run_results.get("results") or [])


def _command_output(command: str, returncode: int, output: list[str]) -> Any:
    """What ``DbtResult.output`` holds in process, where the subprocess can reproduce it."""
    if command in ("ls", "list"):
        return output
    if command == "debug":
        return returncode == EXIT_SUCCESS
    return None


def _executable(path: str | os.PathLike[str]) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise DbtConfigurationError(
            f"dbt_executable {str(candidate)!r} is not an executable file; point it at the dbt script "
            "of the virtualenv that holds dbt, e.g. /opt/dbt-venv/bin/dbt"
        )
    return candidate


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


@contextlib.contextmanager
def _children_start_with_default_sigint(logger: logging.Logger) -> Iterator[None]:
    """Start child processes with SIGINT at its default disposition, even if this process ignores it.

    A process started in the background by a non-interactive shell (``nohup airflow celery worker
    &``, many init scripts) ignores SIGINT, and children inherit that. A Python started that way
    never installs its KeyboardInterrupt handler, so dbt would ignore the SIGINT :meth:`terminate`
    sends and leave its warehouse queries running. The disposition is restored as soon as the
    child exists (``Popen`` returns after the child's exec). Only the main thread may change it.
    """
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        logger.warning(
            "This process ignores SIGINT and dbt is started outside the main thread, so dbt will "
            "ignore it too: terminate() will kill dbt without cancelling its queries"
        )
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
