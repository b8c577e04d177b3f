"""What both dbt runners do to a project, whichever way they start dbt.

:class:`ProjectRunner` is the one contract of :class:`~airflow_dbt_provider.core.runner.DbtRunner`
(dbt in this process) and
:class:`~airflow_dbt_provider.core.subprocess_runner.SubprocessDbtRunner` (dbt as a child
process): the same constructor options (:class:`RunnerOptions`), the same
``invoke(args, capture=..., **overrides)`` returning a
:class:`~airflow_dbt_provider.core.results.DbtResult`, and the same steps around dbt — the
project, profiles directory and arguments checked up front, a fresh temporary target/log
directory per invocation, declared packages installed into a mirror (the project is never
written), artifacts kept in ``artifacts_dir``, captured files read before the directory goes, and
an empty selection flagged. Only how dbt is started differs, so only that lives in the runners.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_dbt_provider.core.deps import declared_packages, mirror_with_packages, packages_installed
from airflow_dbt_provider.core.errors import DbtConfigurationError
from airflow_dbt_provider.core.events import DbtEventLogger
from airflow_dbt_provider.core.parse_cache import default_cache_dir
from airflow_dbt_provider.core.results import DbtResult

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

#: Commands that run (or compile, or check) the nodes a selection picks: an empty selection
#: makes them succeed having done nothing (see :func:`flag_empty_selection`).
RUNS_SELECTED_NODES = frozenset(
    {"build", "clone", "compile", "docs generate", "run", "seed", "snapshot", "source freshness", "test"}
)
#: Commands that accept ``--select``/``--exclude``/``--selector``: those, and the ones that only
#: list or preview what a selection picks.
SELECTING_COMMANDS = RUNS_SELECTED_NODES | {"list", "ls", "show"}
#: Commands that work on the project itself and need no packages installed.
WITHOUT_PACKAGES = frozenset({"deps", "clean", "debug"})
#: Artifacts dbt writes at the top of its target path.
ARTIFACT_FILES = (
    "manifest.json",
    "run_results.json",
    "catalog.json",
    "sources.json",
    "semantic_manifest.json",
    "graph_summary.json",
    "index.html",
)
#: dbt's command groups: their first sub-command word is part of the command's name.
_GROUP_COMMANDS = frozenset({"docs", "source"})
#: Options the runner owns; passing them in ``args`` would break isolation or the parse cache.
_RESERVED_OPTIONS = {
    "--project-dir": "project_dir",
    "--profiles-dir": "profiles_dir",
    "--target-path": "the runner (each invocation has its own; use artifacts_dir to keep files)",
    "--log-path": "the runner (each invocation has its own; use artifacts_dir to keep dbt.log)",
    "--vars": "vars",
    "--target": "target",
    "-t": "target",
    "--profile": "profile",
}
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)


class RunnerOptions(TypedDict, total=False):
    """The keyword options both runners accept (every one optional).

    * ``profiles_dir``: directory holding ``profiles.yml``; default: ``$DBT_PROFILES_DIR``, else the
      project directory when it holds one, else ``~/.dbt``.
    * ``target`` / ``profile``: the profile target (``--target``) and name (``--profile``);
      default: the profile's own default and the project's ``profile:``.
    * ``vars``: dbt vars (``--vars``) for every invocation.
    * ``env``: environment variables set only while dbt runs (e.g. a profile's secrets).
    * ``secrets``: values to redact from every log line; ``env`` values whose names look secret
      (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*KEY*``, ...) are always redacted.
    * ``logger``: where dbt's lines go; default: ``airflow_dbt_provider.dbt``.
    * ``cache_dir``: root of the partial-parse cache and package mirrors; default:
      :func:`~airflow_dbt_provider.core.parse_cache.default_cache_dir`.
    * ``install_deps``: run ``dbt deps`` first when the project declares packages that are not
      installed, into a cached mirror of the project (the project directory is never written).
    * ``artifacts_dir``: when set, each invocation's artifacts and ``dbt.log`` are copied here,
      also when the invocation raised (was killed, timed out).
    * ``send_anonymous_usage_stats``: opt in to dbt's anonymous usage tracking (off by default).
    """

    profiles_dir: str | os.PathLike[str] | None
    target: str | None
    profile: str | None
    vars: Mapping[str, Any] | None
    env: Mapping[str, str] | None
    secrets: Collection[str]
    logger: logging.Logger | None
    cache_dir: str | os.PathLike[str] | None
    install_deps: bool
    artifacts_dir: str | os.PathLike[str] | None
    send_anonymous_usage_stats: bool


@dataclass(frozen=True)
class Request:
    """What one ``invoke`` call asked for."""

    command: str
    argv: list[str]
    overrides: Mapping[str, Any]
    capture: Collection[str]
    started: float  # time.monotonic() when invoke began: elapsed covers packages and parsing too

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True)
class Invocation:
    """The temporary paths of one invocation, deleted when it ends."""

    root: Path
    target_path: Path
    log_path: Path

    def read(self, names: Collection[str]) -> dict[str, bytes]:
        """The bytes of the artifact files ``names`` that dbt wrote (missing ones are left out)."""
        return {n: (self.target_path / n).read_bytes() for n in names if (self.target_path / n).is_file()}


class ProjectRunner(abc.ABC):
    """Run dbt commands against one project; subclasses say how dbt is started.

    :param project_dir: the dbt project (the directory holding ``dbt_project.yml``).
    :param options: see :class:`RunnerOptions`.
    """

    def __init__(self, project_dir: str | os.PathLike[str], **options: Unpack[RunnerOptions]) -> None:
        self.project_dir = existing_project(project_dir)
        self.profiles_dir = resolve_profiles_dir(options.get("profiles_dir"), self.project_dir)
        self.target = options.get("target")
        self.profile = options.get("profile")
        self.vars = dict(options.get("vars") or {})
        self.env = {str(k): str(v) for k, v in (options.get("env") or {}).items()}
        cache_dir = options.get("cache_dir")
        self.cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.install_deps = options.get("install_deps", False)
        artifacts_dir = options.get("artifacts_dir")
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.send_anonymous_usage_stats = options.get("send_anonymous_usage_stats", False)
        self.logger = options.get("logger") or logging.getLogger("airflow_dbt_provider.dbt")
        secrets = [*options.get("secrets", ()), *secret_env_values(self.env)]
        self.events = DbtEventLogger(self.logger, secrets=secrets)
        self._effective_project: Path | None = None

    def __repr__(self) -> str:
        # env values may be secrets: show only their names.
        fields = [*self._describe(), f"project_dir={str(self.project_dir)!r}"]
        fields += [f"target={self.target!r}", f"env_keys={sorted(self.env)!r}"]
        return f"{type(self).__name__}({', '.join(fields)})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the runner keeps between invocations (call it when the task is done)."""
        self._effective_project = None

    def invoke(
        self, args: Sequence[str] | str, *, capture: Collection[str] = (), **overrides: Any
    ) -> DbtResult:
        """Run one dbt command, e.g. ``invoke(["run"], select=["orders"], fail_fast=True)``.

        ``args`` are dbt's CLI arguments (a list, or a string split like a shell would);
        ``overrides`` are dbt's parameter names (``select``, ``full_refresh``, ``threads``, ...)
        and win over ``args``. ``capture`` names artifact files (``run_results.json``) whose bytes
        the result carries in ``captured`` even though the invocation's directory is deleted.

        Returns the result even when dbt reports failures (check ``result.success``); raises
        :class:`~airflow_dbt_provider.core.errors.DbtInvocationError` when dbt could not run the
        command at all.
        """
        argv = check_args(args)
        command = command_name(argv)
        reject_reserved(overrides, self.RESERVED_OVERRIDES)
        with self._exclusive():
            request = Request(command, argv, overrides, capture, started=time.monotonic())
            project_dir = self._project_for_run(command)
            with invocation_dir() as invocation:
                try:
                    result = self._execute(request, project_dir, invocation)
                except BaseException:
                    self._keep_what_was_written(invocation)
                    raise
                result = flag_empty_selection(result, self.events, self.logger)
                captured = invocation.read(capture)
        return dataclasses.replace(result, captured=captured) if captured else result

    # -- what subclasses provide ----------------------------------------------------------------

    #: Keyword overrides of settings the runner manages itself.
    RESERVED_OVERRIDES: tuple[str, ...] = ("project_dir", "target_path", "log_path")

    @abc.abstractmethod
    def _execute(self, request: Request, project_dir: Path, invocation: Invocation) -> DbtResult:
        """Run dbt for ``request`` on ``project_dir``, writing into ``invocation``; map its outcome."""

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Held around the whole invocation (the in-process runner: one dbt at a time)."""
        return contextlib.nullcontext()

    def _describe(self) -> list[str]:
        """Extra ``repr`` fields, before the project."""
        return []

    @abc.abstractmethod
    def _install_packages(self, mirror: Path) -> None:
        """Run ``dbt deps`` in ``mirror``; raise ``DbtCommandFailedError`` when it fails."""

    @abc.abstractmethod
    def _mirror_version(self) -> str:
        """What keys the package mirror besides the project: the dbt that installed the packages."""

    # -- shared steps ---------------------------------------------------------------------------

    def _tracking_env(self) -> dict[str, str]:
        """The variables that switch dbt's anonymous usage tracking off, unless opted in."""
        if self.send_anonymous_usage_stats:
            return {}
        return {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}

    def _project_for_run(self, command: str) -> Path:
        """The project dir dbt sees: the user's, or a mirror with packages installed."""
        if command in WITHOUT_PACKAGES:
            return self.project_dir
        if self._effective_project is None:
            project = self.project_dir
            if self.install_deps and declared_packages(project) and not packages_installed(project):
                project = mirror_with_packages(
                    project, self.cache_root, self._install_packages, version=self._mirror_version()
                )
            self._effective_project = project
        return self._effective_project

    def _keep_what_was_written(self, invocation: Invocation) -> None:
        """Keep what an invocation that raised (killed, timed out, dbt error) wrote so far.

        A killed or timed-out task's ``dbt.log`` says what dbt was doing when it was stopped, and
        dbt writes ``run_results.json`` for the nodes finished before an interrupt; both would go
        with the invocation's directory. Best effort: the exception in flight is what matters.
        """
        with contextlib.suppress(OSError):
            self._keep_artifacts(invocation)

    def _keep_artifacts(self, invocation: Invocation) -> dict[str, Path]:
        """Copy artifacts to ``artifacts_dir`` when asked; return where they are kept."""
        if self.artifacts_dir is None:
            return {}
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        kept: dict[str, Path] = {}
        sources = [*(invocation.target_path / n for n in ARTIFACT_FILES), invocation.log_path / "dbt.log"]
        for source in sources:
            if source.is_file():
                shutil.copyfile(source, self.artifacts_dir / source.name)
                kept[source.name] = self.artifacts_dir / source.name
        return kept


@contextlib.contextmanager
def invocation_dir() -> Iterator[Invocation]:
    """A fresh ``target``/``logs`` pair for one invocation, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dbt-invocation-"))
    try:
        invocation = Invocation(root=root, target_path=root / "target", log_path=root / "logs")
        invocation.target_path.mkdir()
        invocation.log_path.mkdir()
        yield invocation
    finally:
        shutil.rmtree(root, ignore_errors=True)


def reject_reserved(overrides: Mapping[str, Any], reserved: Collection[str]) -> None:
    """Refuse keyword overrides of settings the runner manages itself."""
    for name in reserved:
        if name in overrides:
            raise DbtConfigurationError(f"{name}= cannot be overridden per invocation: the runner manages it")


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """Values of env vars whose names say they hold a secret (dbt's ``DBT_ENV_SECRET_*`` among them)."""
    return [value for key, value in env.items() if _SECRET_NAME.search(key)]


def flag_empty_selection(result: DbtResult, events: DbtEventLogger, logger: logging.Logger) -> DbtResult:
    """Mark (and warn once about) a command of :data:`RUNS_SELECTED_NODES` that selected nothing.

    dbt treats a selection matching no node as success with nothing done, which on a schedule
    is easy to miss (a renamed model, a typo in ``select``). dbt's ``NothingToDo`` event is the
    one signal every such command gives, ``docs generate`` included (it has no node results).
    """
    if result.command not in RUNS_SELECTED_NODES or not events.nothing_to_do:
        return result
    logger.warning("dbt %s: the selection matched no nodes; nothing ran", result.command)
    return dataclasses.replace(result, empty_selection=True)


def command_name(argv: Sequence[str]) -> str:
    """dbt's command from argv: ``run``, or ``docs generate`` / ``source freshness`` for groups."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        raise DbtConfigurationError(f"No dbt command in {list(argv)!r}; pass e.g. ['run'] or 'build'")
    if words[0] in _GROUP_COMMANDS and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


def check_args(args: Sequence[str] | str) -> list[str]:
    """``args`` as a list of words, refusing the options the runner manages (see ``RunnerOptions``)."""
    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    for arg in argv:
        option = arg.split("=", 1)[0]
        if option in _RESERVED_OPTIONS:
            raise DbtConfigurationError(
                f"{option} is managed by the runner; pass {_RESERVED_OPTIONS[option]} instead of "
                f"putting it in the dbt args"
            )
    return argv


def existing_project(project_dir: str | os.PathLike[str]) -> Path:
    """The resolved project directory, or a clear error when it is not a dbt project."""
    path = Path(project_dir).expanduser()
    if not path.is_dir():
        raise DbtConfigurationError(
            f"dbt project directory {str(path)!r} does not exist; set project_dir to the directory "
            "that contains dbt_project.yml"
        )
    if not (path / "dbt_project.yml").is_file():
        raise DbtConfigurationError(
            f"{str(path)!r} has no dbt_project.yml, so it is not a dbt project; set project_dir to "
            "the directory that contains dbt_project.yml"
        )
    return path.resolve()


def resolve_profiles_dir(profiles_dir: str | os.PathLike[str] | None, project_dir: Path) -> Path:
    """The directory of ``profiles.yml``: as given, else ``$DBT_PROFILES_DIR``, the project, ``~/.dbt``."""
    if profiles_dir is not None:
        path = Path(profiles_dir).expanduser()
        if not (path / "profiles.yml").is_file():
            raise DbtConfigurationError(
                f"profiles_dir {str(path)!r} has no profiles.yml; point it at the directory that "
                "holds profiles.yml (or use an Airflow connection via profile_conn_id)"
            )
        return path.resolve()
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"]).expanduser().resolve()
    if (project_dir / "profiles.yml").is_file():
        return project_dir
    return Path.home() / ".dbt"
