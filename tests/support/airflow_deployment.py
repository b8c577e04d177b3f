"""A real Airflow 3 deployment on loopback: api-server, scheduler, dag-processor and triggerer.

Why: unit tests and ``dag.test()`` run tasks inside the test process; users run them in a
deployment where a scheduler queues them, a LocalExecutor worker supervises a forked task
process that talks to the api-server's Execution API, deferred tasks move to a triggerer, and
the UI reads logs and XComs through the REST API. Only a deployment like that shows whether the
provider works there. This module starts one in a temporary ``AIRFLOW_HOME`` and tears it down
by the process ids it started; it imports nothing from pytest so ``make demo`` can use it too.

Typical use::

    with AirflowDeployment(dag_folders=[Path("example_dags")], db_url=pg_url) as deployment:
        api = deployment.api()
        run_id = api.trigger_dag_run("my_dag")
        api.wait_for_dag_run("my_dag", run_id)

Every component runs in its own session (``start_new_session``), so a signal to its process
group reaches the LocalExecutor workers and the triggerer's runner subprocess; task processes
put themselves in their own group, so teardown also signals every descendant it can see.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import httpx
import psutil

from support.airflow_api import AirflowApi
from support.process_guard import record_started, signals_deferred

#: The long-running components a deployment starts, in start order.
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The key each component's heartbeat has in ``GET /api/v2/monitor/health``.
HEALTH_KEYS: dict[str, str] = {
    "scheduler": "scheduler",
    "triggerer": "triggerer",
    "dag-processor": "dag_processor",
}
#: Every setting a ``defaults=True`` deployment makes: where it lives, how to reach it, who may
#: log in, its keys, ports that would collide with a second deployment, and no example DAGs.
DEFAULTS_SETTINGS: frozenset[str] = frozenset(
    {
        "AIRFLOW_HOME",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__LOAD_EXAMPLES",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__API__HOST",
        "AIRFLOW__API__PORT",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    }
)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running us (the project's ``.venv``)."""
    candidate = Path(sys.executable).parent / "airflow"
    if not candidate.exists():
        raise RuntimeError(
            f"no `airflow` next to {sys.executable}; install the project with `make install-dev`"
        )
    return str(candidate)


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Component:
    """One Airflow process we started, plus everything it forked, addressed by pid only."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _seen: set[int] = field(default_factory=set, repr=False)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"component {self.name} is not running")
        return self.proc.pid

    def start(self) -> None:
        """Start the process in its own session, appending its output to ``log_path``."""
        if self.alive():
            raise RuntimeError(f"component {self.name} is already running (pid {self.pid})")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"\n===== starting {self.name}: {' '.join(self.argv[1:])}\n".encode())
        self._log.flush()
        self._seen = set()
        with signals_deferred():  # a termination signal must not lose the handle on a started process
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            record_started(self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """Every live process below ours; remembered so orphans are still found at teardown."""
        if self.proc is None:
            return []
        found: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            found = psutil.Process(self.proc.pid).children(recursive=True)
        for process in found:
            if process.pid not in self._seen:
                record_started(self.name, process.pid)
        self._seen.update(p.pid for p in found)
        return found

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the component's process group and to every descendant we know of."""
        if self.proc is None:
            return
        pids = {p.pid for p in self.descendants()} | self._seen
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def pause(self) -> None:
        """SIGSTOP the whole component (e.g. a triggerer that stops heartbeating but lives on).

        Marked in its log: Airflow's triggerer watchdog (``TriggerRunner.block_watchdog``) times
        the stop as the event loop "blocked for N seconds" when it wakes up.
        """
        self._mark("SIGSTOP (paused by the test)")
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)
        self._mark("SIGCONT (resumed by the test)")

    def _mark(self, what: str) -> None:
        if self._log is not None:
            stamp = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
            )
            self._log.write(f"===== {stamp} {what}\n".encode())
            self._log.flush()

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop the component and its descendants: ``sig`` first, SIGKILL after ``timeout`` s.

        Returns the main process's exit code (``None`` if it was never started).
        """
        stop_components([self], sig=sig, timeout=timeout)
        return self.proc.returncode if self.proc is not None else None

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (after SIGCONT: a paused process cannot act on it) without waiting."""
        if self.proc is None:
            return
        self.descendants()
        if self.alive():
            self.send_signal(signal.SIGCONT)
            self.send_signal(sig)

    def stopped(self) -> bool:
        """True when neither the process nor any descendant we have seen is still running."""
        self.descendants()
        return not self.alive() and not self._live_seen()

    def force_stop(self) -> None:
        """SIGKILL whatever is left, reap the main process and close the log."""
        if self.proc is None:
            return
        if not self.stopped():
            self.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._reap_seen()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _live_seen(self) -> bool:
        for pid in self._seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return True
        return False

    def _reap_seen(self) -> None:
        """SIGKILL any remembered descendant that outlived its parent (reparented orphans)."""
        for pid in self._seen:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def stop_components(
    components: Sequence[Component], *, sig: int = signal.SIGTERM, timeout: float = 30.0
) -> None:
    """Stop several components at once: one shared grace period instead of one per component."""
    for component in components:
        component.request_stop(sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c.stopped() for c in components):
        time.sleep(0.2)
    for component in components:
        component.force_stop()


class DeploymentError(RuntimeError):
    """The deployment could not start or a component died; the message carries the log tails."""


class AirflowDeployment:
    """An Airflow 3 deployment in a temporary ``AIRFLOW_HOME`` on loopback, with LocalExecutor.

    ``dag_folders`` are linked into the deployment's DAGs folder under their own names, so DAG
    files keep their real paths for ``__file__``-relative lookups. ``db_url`` is the metadata DB
    (SQLAlchemy URL; it carries a password, so it is never logged); ``None`` means SQLite in the
    home, Airflow's embedded default. ``env`` is added to every component's environment (e.g. a
    CA bundle that trusts the dbt Cloud emulator, or ``AIRFLOW_CONN_*`` connections).

    ``defaults=True`` runs on Airflow's own defaults, as a new user's deployment would: only
    :data:`DEFAULTS_SETTINGS` are set (where it lives, how to reach it, who may log in, its keys),
    so heartbeats, intervals, executor, parallelism and API workers are Airflow's. The tuned
    variant (the default here) shortens heartbeats and intervals for speed; every headline
    behaviour must pass on both.
    """

    _active: ClassVar[set[AirflowDeployment]] = set()

    def __init__(
        self,
        *,
        dag_folders: Sequence[Path],
        db_url: str | None = None,
        home: Path | None = None,
        name: str = "airflow",
        parallelism: int = 16,
        env: Mapping[str, str] | None = None,
        username: str = "admin",
        password: str | None = None,
        triggerer_health_check_threshold: int = 15,
        stop_timeout: float = 8.0,
        defaults: bool = False,
    ) -> None:
        self.name = name
        self._own_home = home is None
        self.home = home or Path(tempfile.mkdtemp(prefix=f"adp-{name}-home-"))
        self.dag_folders = [Path(p).resolve() for p in dag_folders]
        self._db_url = db_url or f"sqlite:///{self.home / 'airflow.db'}"
        self.parallelism = parallelism
        self.extra_env = dict(env or {})
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.triggerer_health_check_threshold = triggerer_health_check_threshold
        self.stop_timeout = stop_timeout
        self.defaults = defaults
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.components: dict[str, Component] = {}
        self._api: AirflowApi | None = None
        self._env: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"AirflowDeployment({self.name!r}, base_url={self.base_url!r}, home={str(self.home)!r})"

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``: which metadata DB this deployment runs on."""
        return self._db_url.split(":", 1)[0].split("+", 1)[0]

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def logs_folder(self) -> Path:
        return self.home / "logs"

    # -- configuration ----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment every component and CLI call runs with (built once per deployment).

        The test process's own ``AIRFLOW*`` variables are dropped so the suite's unit-test
        Airflow home cannot leak in; everything else (``PATH``, ``PYTHONPATH``) passes through.
        """
        if self._env is not None:
            return self._env
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        if self.defaults:
            env.update(self._defaults_settings(Fernet.generate_key().decode()))
            env.update(self.extra_env)
            self._env = env
            return env
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "128",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._db_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                # Fixed defaults (8793/8794) would collide with a second deployment on the host.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                # New DAG files show up within seconds; known files are not re-parsed in a loop.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                # Heartbeats every 2 s and a short threshold: a paused (SIGSTOP) triggerer is
                # declared unhealthy, and its triggers reassigned, within seconds.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(
                    self.triggerer_health_check_threshold
                ),
                "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
                "DO_NOT_TRACK": "1",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            }
        )
        env.update(self.extra_env)
        self._env = env
        return env

    def _defaults_settings(self, fernet_key: str) -> dict[str, str]:
        """The only settings of a ``defaults=True`` deployment (see :data:`DEFAULTS_SETTINGS`).

        SQLite and LocalExecutor are Airflow's defaults, so neither is set; DAG files are linked
        in before start because the default ``refresh_interval`` (300 s) finds new ones late.
        """
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        if self._db_url != f"sqlite:///{self.home / 'airflow.db'}":
            settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self._db_url
        assert set(settings) <= DEFAULTS_SETTINGS | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
        return settings

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_folder.mkdir(exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        for folder in self.dag_folders:
            if not folder.is_dir():
                raise DeploymentError(f"DAG folder {folder} does not exist")
            link = self.dags_folder / folder.name
            if not link.exists():
                link.symlink_to(folder, target_is_directory=True)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}) + "\n")
        passwords.chmod(0o600)

    def trust_ca_certificates(self, ca_files: Iterable[Path]) -> Path:
        """Make the deployment's HTTPS clients trust ``ca_files`` on top of the public roots.

        Writes a bundle (certifi's roots + the given PEMs) and points ``SSL_CERT_FILE`` and
        ``REQUESTS_CA_BUNDLE`` at it; call before :meth:`start`.
        """
        import certifi

        if self.components:
            raise DeploymentError("trust_ca_certificates() must be called before start()")
        self.home.mkdir(parents=True, exist_ok=True)
        bundle = self.home / "ca-bundle.pem"
        parts = [Path(certifi.where()).read_text()] + [Path(p).read_text() for p in ca_files]
        bundle.write_text("\n".join(parts))
        self.extra_env.update({"SSL_CERT_FILE": str(bundle), "REQUESTS_CA_BUNDLE": str(bundle)})
        self._env = None
        return bundle

    # -- lifecycle --------------------------------------------------------------------------

    def airflow_cli(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with the deployment's environment; raise with output on failure."""
        result = subprocess.run(
            [airflow_executable(), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        (self.logs_folder / "cli.log").open("a").write(
            f"\n===== airflow {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise DeploymentError(f"`airflow {' '.join(args)}` failed ({result.returncode}):\n{output}")
        return result

    def start(self, *, timeout: float = 240.0) -> AirflowDeployment:
        """Migrate the metadata DB, start the four components and wait until all are healthy.

        On any failure the components already started are stopped before the error propagates.
        """
        AirflowDeployment._active.add(self)
        try:
            self._prepare_home()
            self.airflow_cli("db", "migrate")
            for name in COMPONENTS:
                self.start_component(name)
            self.start_extra_components()
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_extra_components(self) -> None:
        """Hook for subclasses: start more components (e.g. Celery workers) before the health wait."""

    def start_component(
        self,
        name: str,
        *,
        alias: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Component:
        """Start ``airflow <name> [args]`` as component ``alias`` (default ``name``).

        An alias lets a test run a second instance, e.g. ``start_component("triggerer",
        alias="triggerer-2")`` to have a healthy triggerer take over a paused one's triggers.
        ``env`` is laid over the deployment's environment for this component only (e.g. a
        Celery worker's own home and temporary directory, as on a machine of its own).
        """
        key = alias or name
        argv = [airflow_executable(), name, *args]
        if name == "api-server" and not self.defaults:  # a defaults deployment reads [api] host/port
            argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        component = self.components.get(key)
        if component is None:
            environment = {**self.environment(), **(env or {})}
            component = Component(key, argv, environment, self.logs_folder / f"{key}.log")
            self.components[key] = component
        component.start()
        return component

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise KeyError(f"no component {name!r}; started: {sorted(self.components)}") from None

    def restart_component(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 120.0) -> Component:
        """Stop ``name`` with ``sig`` (SIGKILL for a crash), start it again, wait until healthy."""
        component = self.component(name)
        component.stop(sig=sig)
        component.start()
        self.wait_healthy(timeout=timeout, components=[name])
        return component

    def stop(self) -> None:
        """Stop every component together and remove the home if we created it."""
        if self._api is not None:  # an open keep-alive connection holds up uvicorn's shutdown
            self._api.close()
            self._api = None
        try:
            # A short grace period: `airflow api-server` lingers 5-10 s after uvicorn has finished,
            # and nothing of a throwaway deployment needs a graceful exit beyond that.
            stop_components(list(self.components.values()), timeout=self.stop_timeout)
        finally:
            for component in self.components.values():  # never leave a process behind
                with contextlib.suppress(Exception):
                    component.force_stop()
        AirflowDeployment._active.discard(self)
        if self._own_home and not os.environ.get("ADP_KEEP_E2E_HOME"):
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> AirflowDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def active(cls) -> list[AirflowDeployment]:
        """Deployments started and not yet stopped (for failure reports and the exit safety net)."""
        return list(cls._active)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.api().health()

    def wait_healthy(self, *, timeout: float = 240.0, components: Iterable[str] | None = None) -> None:
        """Wait until the api-server answers and each component's heartbeat is healthy.

        Fails fast, with the component's log tail, when a component process exits meanwhile.
        """
        names = list(components) if components is not None else list(self.components)
        deadline = time.monotonic() + timeout
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive(names)
            try:
                health = self.health()
            except httpx.HTTPError as exc:
                last = f"api-server not answering: {type(exc).__name__}"
            else:
                last = health
                if self._all_healthy(health, names):
                    return
            time.sleep(1.0)
        raise DeploymentError(
            f"{self.name}: not healthy within {timeout:.0f}s; last health: {last}\n{self.log_tails()}"
        )

    @staticmethod
    def _all_healthy(health: Mapping[str, Any], names: Iterable[str]) -> bool:
        if health.get("metadatabase", {}).get("status") != "healthy":
            return False
        for name in names:
            key = HEALTH_KEYS.get(name.split("-")[0] if name.startswith("triggerer") else name)
            if key and (health.get(key) or {}).get("status") != "healthy":
                return False
        return True

    def _check_alive(self, names: Iterable[str]) -> None:
        for name in names:
            component = self.components[name]
            if not component.alive():
                code = component.proc.returncode if component.proc else None
                raise DeploymentError(f"{self.name}: {name} exited (code {code}):\n{component.log_tail(80)}")

    # -- access -----------------------------------------------------------------------------

    def api(self) -> AirflowApi:
        """A REST API v2 client logged in as the deployment's admin user."""
        if self._api is None:
            self._api = AirflowApi(self.base_url, username=self.username, password=self.password)
        return self._api

    def task_log_files(self) -> list[Path]:
        """Task log files, newest first."""
        files = [p for p in self.logs_folder.glob("dag_id=*/**/*") if p.is_file()]
        return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

    def log_tails(self, lines: int = 60, task_logs: int = 2) -> str:
        """The end of every component's log and of the newest task logs, for failure reports."""
        sections = []
        for component in self.components.values():
            state = "running" if component.alive() else "stopped"
            sections.append(
                f"----- {self.name}: {component.name} ({state}) -----\n{component.log_tail(lines)}"
            )
        for path in self.task_log_files()[:task_logs]:
            rel = path.relative_to(self.logs_folder)
            sections.append(f"----- {self.name}: task log {rel} -----\n{tail(path, lines)}")
        return "\n".join(sections)

    def kill_task_process(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Signal a running task's process (the ``pid`` the API reports for its task instance).

        Refuses pids that are not descendants of this deployment's scheduler: we only ever
        signal processes we started.
        """
        scheduler = self.component("scheduler")
        if pid not in {p.pid for p in scheduler.descendants()}:
            raise DeploymentError(f"pid {pid} is not a process of {self.name}'s scheduler; not signalling it")
        os.kill(pid, sig)


@atexit.register
def _stop_leftovers() -> None:
    """Safety net: a crashed or interrupted run must not leave Airflow processes behind."""
    for deployment in AirflowDeployment.active():
        deployment.stop()
