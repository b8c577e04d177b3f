"""The Airflow-free wrapper around dbt's programmatic API, ``dbt.cli.main.dbtRunner``.

:class:`DbtRunner` runs any dbt command in this process with CLI-style args and/or keyword
overrides and returns a typed :class:`~airflow_dbt_provider.core.results.DbtResult`:

* every invocation gets its own temporary ``target-path`` and ``log-path`` (kept in
  ``artifacts_dir`` when asked), so concurrent tasks never collide and the project can be
  read-only;
* the project is parsed once per runner and the ``Manifest`` reused until a parse-time input
  (vars, target, profile, env) changes; across processes dbt's ``partial_parse.msgpack`` is kept
  in a :class:`~airflow_dbt_provider.core.parse_cache.ParseCache`;
* dbt's events go to a Python logger once each (see :mod:`~airflow_dbt_provider.core.events`);
  anonymous usage tracking is off unless asked for;
* one invocation at a time per process, with ``os.environ``/cwd restored and adapters released
  afterwards (see :mod:`~airflow_dbt_provider.core.isolation`).

dbt is imported lazily, so importing this module (e.g. while Airflow parses a DAG file) is cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from airflow_dbt_provider.core.dbt_versions import check_params
from airflow_dbt_provider.core.deps import declared_packages, mirror_with_packages, packages_installed
from airflow_dbt_provider.core.errors import DbtConfigurationError, DbtInvocationError
from airflow_dbt_provider.core.events import DbtEventLogger
from airflow_dbt_provider.core.isolation import (
    INVOCATION_LOCK,
    collect_garbage,
    import_dbt,
    process_state,
    release_adapters,
)
from airflow_dbt_provider.core.parse_cache import PARTIAL_PARSE_FILE, ParseCache, cache_key
from airflow_dbt_provider.core.results import DbtResult, map_runner_result

#: Commands that accept a pre-parsed ``Manifest`` (dbt's ``requires.manifest``/``setup_manifest``).
MANIFEST_COMMANDS = frozenset(
    {
        "build",
        "clone",
        "compile",
        "docs generate",
        "list",
        "ls",
        "run",
        "run-operation",
        "seed",
        "show",
        "snapshot",
        "source freshness",
        "test",
    }
)
#: Commands that read ``profiles.yml`` (``deps``/``clean`` do not; ``debug`` does).
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


@dataclass(frozen=True)
class _Invocation:
    """The paths of one invocation."""

    root: Path
    target_path: Path
    log_path: Path


class DbtRunner:
    """Run dbt commands in process against one project.

    :param project_dir: the dbt project (the directory holding ``dbt_project.yml``).
    :param profiles_dir: directory holding ``profiles.yml``; default: ``$DBT_PROFILES_DIR``, else the
        project directory when it holds one, else ``~/.dbt``.
    :param target: the profile target (``--target``); default: the profile's own default.
    :param profile: the profile name (``--profile``); default: the project's ``profile:``.
    :param vars: dbt vars (``--vars``) for every invocation.
    :param env: environment variables set only while dbt runs (e.g. a profile's secrets).
    :param secrets: values to redact from every log line; ``env`` values whose names look secret
        (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*KEY*``, ...) are always redacted.
    :param logger: where dbt's lines go; default: ``airflow_dbt_provider.dbt``.
    :param cache_dir: root of the partial-parse cache and package mirrors; default:
        :func:`~airflow_dbt_provider.core.parse_cache.default_cache_dir`.
    :param parse_cache: keep ``partial_parse.msgpack`` across processes.
    :param reuse_manifest: parse once and reuse the ``Manifest`` for later invocations.
    :param install_deps: run ``dbt deps`` first when the project declares packages that are not
        installed, into a mirror of the project (the project directory is never written).
    :param artifacts_dir: when set, each invocation's artifacts and ``dbt.log`` are copied here.
    :param send_anonymous_usage_stats: opt in to dbt's anonymous usage tracking (off by default).
    """

    def __init__(
        self,
        project_dir: str | os.PathLike[str],
        *,
        profiles_dir: str | os.PathLike[str] | None = None,
        target: str | None = None,
        profile: str | None = None,
        vars: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Collection[str] = (),
        logger: logging.Logger | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        parse_cache: bool = True,
        reuse_manifest: bool = True,
        install_deps: bool = False,
        artifacts_dir: str | os.PathLike[str] | None = None,
        send_anonymous_usage_stats: bool = False,
    ) -> None:
        self.project_dir = _existing_project(project_dir)
        self.profiles_dir = _profiles_dir(profiles_dir, self.project_dir)
        self.target = target
        self.profile = profile
        self.vars = dict(vars or {})
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.cache = ParseCache(Path(cache_dir) if cache_dir is not None else None)
        self.parse_cache = parse_cache
        self.reuse_manifest = reuse_manifest
        self.install_deps = install_deps
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.send_anonymous_usage_stats = send_anonymous_usage_stats
        self.logger = logger or logging.getLogger("airflow_dbt_provider.dbt")
        self.events = DbtEventLogger(self.logger, secrets=[*secrets, *_secret_env_values(self.env)])
        self._manifest: Any = None
        self._manifest_key: str | None = None
        self._manifest_env: list[str] = []
        self._effective_project: Path | None = None

    def __repr__(self) -> str:
        # env values may be secrets: show only their names.
        return (
            f"DbtRunner(project_dir={str(self.project_dir)!r}, target={self.target!r}, "
            f"env_keys={sorted(self.env)!r})"
        )

    # -- public API -----------------------------------------------------------------------------

    def __enter__(self) -> DbtRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the kept manifest and finalise dbt's leftovers (see ``collect_garbage``).

        Call it (or use the runner as a context manager) when the task is done with dbt.
        """
        self._manifest = self._manifest_key = None
        collect_garbage()

    def invoke(
        self,
        args: Sequence[str] | str,
        *,
        capture: Collection[str] = (),
        **overrides: Any,
    ) -> DbtResult:
        """Run one dbt command, e.g. ``invoke(["run"], select=["orders"], fail_fast=True)``.

        ``args`` are dbt's CLI arguments (a list, or a string split like a shell would);
        ``overrides`` are dbt's parameter names (``select``, ``full_refresh``, ``threads``, ...)
        and win over ``args``. ``capture`` names artifact files (``run_results.json``) whose bytes
        the result carries in ``captured`` even though the invocation's directory is deleted.

        Returns the result even when dbt reports failures (check ``result.success``); raises
        :class:`DbtInvocationError` when dbt raised instead, chained to dbt's exception.
        """
        argv = _check_args(args)
        command = command_name(argv)
        check_params(command, argv, overrides)  # before dbt, which drops unknown keywords silently
        with INVOCATION_LOCK, process_state(self._environment()):
            started = time.monotonic()  # elapsed covers parsing and installing packages too
            project_dir = self._project_for_run(command)
            with self._invocation() as invocation:
                params = self._params(project_dir, invocation, overrides)
                manifest = self._manifest_for(command, argv, params, invocation)
                return self._run(command, argv, params, invocation, manifest, capture, started)

    def parse(self) -> DbtResult:
        """Parse the project (``dbt parse``) and keep the manifest for later invocations."""
        return self.invoke(["parse"])

    # -- one invocation -------------------------------------------------------------------------

    def _run(
        self,
        command: str,
        argv: list[str],
        params: dict[str, Any],
        invocation: _Invocation,
        manifest: Any,
        capture: Collection[str],
        started: float,
    ) -> DbtResult:
        # With a manifest in hand dbt does not parse, so the cache is neither needed nor refreshed.
        restored = self._restore_parse_cache(params, invocation) if manifest is None else None
        self.events.reset()
        raw = self._call_dbt(argv, params, manifest)
        elapsed = time.monotonic() - started
        if command == "parse" and raw.success and raw.exception is None:
            self._remember_manifest(raw.result, params)
        if manifest is None:
            self._store_parse_cache(params, invocation, restored)
        if manifest is not None and (self.artifacts_dir is not None or "manifest.json" in capture):
            # dbt skips manifest.json when handed a manifest; write it when it is kept or captured.
            _write_manifest(manifest, invocation.target_path)
        artifacts = self._keep_artifacts(invocation)
        result = map_runner_result(
            command,
            raw,
            elapsed=elapsed,
            artifacts=artifacts,
            error_messages=self.events.errors,
            redact=self.events.clean,
        )
        captured = {
            name: (invocation.target_path / name).read_bytes()
            for name in capture
            if (invocation.target_path / name).is_file()
        }
        return dataclasses.replace(result, captured=captured) if captured else result

    def _call_dbt(self, argv: list[str], params: dict[str, Any], manifest: Any) -> Any:
        import_dbt()
        from dbt.cli.main import dbtRunner

        # --profiles-dir goes on the command line, not in the keyword overrides: click validates
        # the option's default (``~/.dbt`` must exist) before dbt applies keyword overrides.
        argv = [*argv, "--profiles-dir", str(self.profiles_dir)]
        cwd = os.getcwd()
        try:
            return dbtRunner(manifest=manifest, callbacks=[self.events]).invoke(argv, **params)
        finally:
            # dbt-core 1.8 leaves the process in the project dir (1.9's tasks restore the cwd); after
            # `deps` in a staging mirror that directory is deleted, and the next parse would fail.
            os.chdir(cwd)
            release_adapters()

    def _manifest_for(
        self, command: str, argv: list[str], params: dict[str, Any], invocation: _Invocation
    ) -> Any:
        """The manifest to hand to dbt: parsed now, or reused when the parse inputs match."""
        if not self.reuse_manifest or command not in MANIFEST_COMMANDS or "--inline-direct" in argv:
            return None
        key = self._parse_key(params)
        if self._manifest is not None and self._manifest_key == key:
            return self._manifest
        self._manifest = self._manifest_key = None
        restored = self._restore_parse_cache(params, invocation)
        self.events.reset()
        parse_params = {k: v for k, v in params.items() if k in _PARSE_PARAMS}
        # manifest.json costs a JSON dump of the whole project; write it only when it is kept.
        parse_params["write_json"] = self.artifacts_dir is not None
        raw = self._call_dbt(["parse"], parse_params, None)
        self._store_parse_cache(params, invocation, restored)
        if raw.exception is not None:
            raise DbtInvocationError(command, raw.exception, redact=self.events.clean) from raw.exception
        if not raw.success:
            return None  # let the command itself parse and report what is wrong
        self._remember_manifest(raw.result, params)
        return self._manifest

    def _remember_manifest(self, manifest: Any, params: Mapping[str, Any]) -> None:
        self._manifest = manifest
        self._manifest_env = sorted(getattr(manifest, "env_vars", None) or {})
        self._manifest_key = self._parse_key(params)

    def _parse_key(self, params: Mapping[str, Any]) -> str:
        """Everything that changes what parsing produces; a reused manifest must match it.

        That is the parse-time parameters (vars, target, profile), the runner's own env, dbt's
        ``DBT_*`` settings, and the current value of every env var the project read while parsing
        (dbt records them in ``manifest.env_vars``). The rest of the environment does not count,
        or any unrelated variable (pytest's, Airflow's) would force a re-parse.
        """
        inputs: dict[str, Any] = {
            k: params.get(k) for k in sorted(_PARSE_PARAMS - {"target_path", "log_path"})
        }
        inputs["profiles_dir"] = str(self.profiles_dir)
        names = {*self.env, *self._manifest_env, *(k for k in os.environ if k.startswith("DBT_"))}
        inputs["env"] = {name: os.environ.get(name) for name in sorted(names)}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()

    # -- parse cache ----------------------------------------------------------------------------

    def _cache_key(self, params: Mapping[str, Any]) -> str:
        profiles = self.profiles_dir / "profiles.yml"
        return cache_key(
            project_dir=Path(params["project_dir"]),
            profiles_yml=profiles.read_bytes() if profiles.is_file() else b"",
            profile=params.get("profile"),
            target=params.get("target"),
            vars=params.get("vars"),
        )

    def _restore_parse_cache(self, params: Mapping[str, Any], invocation: _Invocation) -> Any:
        """Copy the cached partial-parse file in; return its stat to detect a rewrite later."""
        if not self.parse_cache or params.get("partial_parse") is False:
            return None
        if self.cache.restore(self._cache_key(params), invocation.target_path):
            stat = (invocation.target_path / PARTIAL_PARSE_FILE).stat()
            return (stat.st_size, stat.st_mtime_ns)
        return None

    def _store_parse_cache(self, params: Mapping[str, Any], invocation: _Invocation, restored: Any) -> None:
        written = invocation.target_path / PARTIAL_PARSE_FILE
        if not self.parse_cache or not written.is_file():
            return
        stat = written.stat()
        if restored != (stat.st_size, stat.st_mtime_ns):
            self.cache.store(self._cache_key(params), invocation.target_path)

    # -- setup ----------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(self.env)
        if not self.send_anonymous_usage_stats:
            env.update({"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
        return env

    def _params(
        self, project_dir: Path, invocation: _Invocation, overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        for reserved in ("project_dir", "target_path", "log_path"):
            if reserved in overrides:
                raise DbtConfigurationError(
                    f"{reserved}= cannot be overridden per invocation: the runner manages it"
                )
        params: dict[str, Any] = {
            "project_dir": str(project_dir),
            "target_path": str(invocation.target_path),
            "log_path": str(invocation.log_path),
            "use_colors": False,
            "use_colors_file": False,
            "log_level": "none",  # dbt's own console logger off: our callback logs each line once
            # dbt.log is only worth writing when it is kept (it would be deleted with the invocation).
            "log_level_file": "debug" if self.artifacts_dir is not None else "none",
            "send_anonymous_usage_stats": self.send_anonymous_usage_stats,
        }
        if self.target:
            params["target"] = self.target
        if self.profile:
            params["profile"] = self.profile
        if self.vars:
            params["vars"] = dict(self.vars)
        params.update(_normalise(overrides))
        return params

    def _project_for_run(self, command: str) -> Path:
        """The project dir dbt sees: the user's, or a mirror with packages installed."""
        if command in ("deps", "clean", "debug"):
            return self.project_dir  # these work on the project itself and need no packages
        if self._effective_project is None:
            project = self.project_dir
            if self.install_deps and declared_packages(project) and not packages_installed(project):
                project = mirror_with_packages(
                    project, self.cache.root, self._install_packages, version=_dbt_version()
                )
            self._effective_project = project
        return self._effective_project

    def _install_packages(self, mirror: Path) -> None:
        self.logger.info("Installing the packages of %s (dbt deps)", self.project_dir)
        with self._invocation() as invocation:
            params = {
                "project_dir": str(mirror),
                "log_path": str(invocation.log_path),
                "target_path": str(invocation.target_path),
                "use_colors": False,
                "log_level": "none",
                "send_anonymous_usage_stats": self.send_anonymous_usage_stats,
            }
            self.events.reset()
            raw = self._call_dbt(["deps"], params, None)
            result = map_runner_result("deps", raw, elapsed=0.0, error_messages=self.events.errors)
            if not result.success:
                from airflow_dbt_provider.core.errors import DbtCommandFailedError

                raise DbtCommandFailedError(result)

    @contextlib.contextmanager
    def _invocation(self) -> Iterator[_Invocation]:
        root = Path(tempfile.mkdtemp(prefix="dbt-invocation-"))
        try:
            invocation = _Invocation(root=root, target_path=root / "target", log_path=root / "logs")
            invocation.target_path.mkdir()
            invocation.log_path.mkdir()
            yield invocation
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _keep_artifacts(self, invocation: _Invocation) -> dict[str, Path]:
        """Copy artifacts to ``artifacts_dir`` when asked; return where they are kept."""
        if self.artifacts_dir is None:
            return {}
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        kept: dict[str, Path] = {}
        sources = [invocation.target_path / n for n in ARTIFACT_FILES]
        sources.append(invocation.log_path / "dbt.log")
        for source in sources:
            if source.is_file():
                shutil.copyfile(source, self.artifacts_dir / source.name)
                kept[source.name] = self.artifacts_dir / source.name
        return kept


#: dbt parameters that parsing depends on (the rest are per-command).
_PARSE_PARAMS = frozenset(
    {
        "project_dir",
        "profiles_dir",
        "profile",
        "target",
        "vars",
        "target_path",
        "log_path",
        "use_colors",
        "use_colors_file",
        "log_level",
        "log_level_file",
        "send_anonymous_usage_stats",
        "partial_parse",
    }
)


_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)


def _secret_env_values(env: Mapping[str, str]) -> list[str]:
    """Values of env vars whose names say they hold a secret (dbt's ``DBT_ENV_SECRET_*`` among them)."""
    return [value for key, value in env.items() if _SECRET_NAME.search(key)]


def command_name(argv: Sequence[str]) -> str:
    """dbt's command from argv: ``run``, or ``docs generate`` / ``source freshness`` for groups."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        raise DbtConfigurationError(f"No dbt command in {list(argv)!r}; pass e.g. ['run'] or 'build'")
    if words[0] in _GROUP_COMMANDS and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


def _check_args(args: Sequence[str] | str) -> list[str]:
    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    for arg in argv:
        option = arg.split("=", 1)[0]
        if option in _RESERVED_OPTIONS:
            raise DbtConfigurationError(
                f"{option} is managed by the runner; pass {_RESERVED_OPTIONS[option]} instead of "
                f"putting it in the dbt args"
            )
    return argv


def _normalise(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Shape keyword overrides the way dbt's click parameters expect them."""
    params: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ("select", "exclude", "resource_types", "exclude_resource_types") and value is not None:
            value = (value,) if isinstance(value, str) else tuple(value)
        params[key] = value
    return params


def _existing_project(project_dir: str | os.PathLike[str]) -> Path:
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


def _profiles_dir(profiles_dir: str | os.PathLike[str] | None, project_dir: Path) -> Path:
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


def _write_manifest(manifest: Any, target_path: Path) -> None:
    """Write manifest.json for an invocation that reused a manifest (dbt skips it then)."""
    with contextlib.suppress(Exception):
        manifest.writable_manifest().write(str(target_path / "manifest.json"))


def _dbt_version() -> str:
    try:
        return metadata.version("dbt-core")
    except metadata.PackageNotFoundError:  # pragma: no cover - the runner needs dbt anyway
        return ""
