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
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_dbt_provider.core.dbt_versions import check_params
from airflow_dbt_provider.core.errors import DbtCommandFailedError, DbtInvocationError
from airflow_dbt_provider.core.isolation import (
    INVOCATION_LOCK,
    collect_garbage,
    forget_deprecations,
    import_dbt,
    process_state,
    release_adapters,
)
from airflow_dbt_provider.core.parse_cache import PARTIAL_PARSE_FILE, ParseCache, RemoteParseCache, cache_key
from airflow_dbt_provider.core.project_run import (
    RUNS_SELECTED_NODES,
    SELECTING_COMMANDS,
    Invocation,
    ProjectRunner,
    Request,
    RunnerOptions,
    command_name,
    invocation_dir,
)
from airflow_dbt_provider.core.results import DbtResult, map_runner_result

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Commands that accept a pre-parsed ``Manifest`` (dbt's ``requires.manifest``/``setup_manifest``).
MANIFEST_COMMANDS = SELECTING_COMMANDS | {"run-operation"}
#: Re-exported: the operators and tests read the command sets and the command's name from here.
__all__ = ["MANIFEST_COMMANDS", "RUNS_SELECTED_NODES", "SELECTING_COMMANDS", "DbtRunner", "command_name"]


class DbtRunner(ProjectRunner):
    """Run dbt commands in process against one project.

    :param project_dir: the dbt project (the directory holding ``dbt_project.yml``).
    :param parse_cache: keep ``partial_parse.msgpack`` across processes.
    :param remote_parse_cache: share it beyond this machine too (looked up on a local miss,
        published after a parse), e.g. the Airflow side's object-storage cache.
    :param reuse_manifest: parse once and reuse the ``Manifest`` for later invocations.
    :param options: the options both runners share, see
        :class:`~airflow_dbt_provider.core.project_run.RunnerOptions` (``profiles_dir``, ``target``,
        ``vars``, ``env``, ``secrets``, ``cache_dir``, ``install_deps``, ``artifacts_dir``, ...).
    :param callbacks: more dbt event callbacks, called from dbt's threads (e.g. to publish each
        node's result as it finishes); like the logging callback they must not raise. In process
        only: a dbt subprocess's events cannot reach a Python callback.
    """

    def __init__(
        self,
        project_dir: str | os.PathLike[str],
        *,
        parse_cache: bool = True,
        remote_parse_cache: RemoteParseCache | None = None,
        reuse_manifest: bool = True,
        callbacks: Sequence[Any] = (),
        **options: Unpack[RunnerOptions],
    ) -> None:
        super().__init__(project_dir, **options)
        self.callbacks = list(callbacks)
        self.cache = ParseCache(self.cache_root, remote=remote_parse_cache)
        self.parse_cache = parse_cache
        self.reuse_manifest = reuse_manifest
        self._manifest: Any = None
        self._manifest_key: str | None = None
        self._manifest_env: list[str] = []

    # -- public API -----------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the kept manifest and finalise dbt's leftovers (see ``collect_garbage``).

        Call it (or use the runner as a context manager) when the task is done with dbt.
        """
        super().close()
        self._manifest = self._manifest_key = None
        collect_garbage()

    def parse(self) -> DbtResult:
        """Parse the project (``dbt parse``) and keep the manifest for later invocations."""
        return self.invoke(["parse"])

    # -- one invocation -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One dbt at a time in this process, with ``os.environ``/cwd restored afterwards."""
        with INVOCATION_LOCK, process_state(self._environment()):
            yield

    def _execute(self, request: Request, project_dir: Path, invocation: Invocation) -> DbtResult:
        # Before dbt, which drops keyword parameters it does not know silently.
        check_params(request.command, request.argv, request.overrides)
        params = self._params(project_dir, invocation, request.overrides)
        manifest = self._manifest_for(request.command, request.argv, params, invocation)
        return self._run(request, params, invocation, manifest)

    def _run(
        self, request: Request, params: dict[str, Any], invocation: Invocation, manifest: Any
    ) -> DbtResult:
        # With a manifest in hand dbt does not parse, so the cache is neither needed nor refreshed.
        restored = self._restore_parse_cache(params, invocation) if manifest is None else None
        self.events.reset()
        raw = self._call_dbt(request.argv, params, manifest)
        elapsed = request.elapsed()
        if request.command == "parse" and raw.success and raw.exception is None:
            self._remember_manifest(raw.result, params)
        if manifest is None:
            self._store_parse_cache(params, invocation, restored)
        if manifest is not None and (self.artifacts_dir is not None or "manifest.json" in request.capture):
            # dbt skips manifest.json when handed a manifest; write it when it is kept or captured.
            _write_manifest(manifest, invocation.target_path)
        artifacts = self._keep_artifacts(invocation)
        return map_runner_result(
            request.command,
            raw,
            elapsed=elapsed,
            artifacts=artifacts,
            error_messages=self.events.errors,
            redact=self.events.clean,
        )

    def _call_dbt(self, argv: list[str], params: dict[str, Any], manifest: Any) -> Any:
        import_dbt()
        from dbt.cli.main import dbtRunner

        # --profiles-dir goes on the command line, not in the keyword overrides: click validates
        # the option's default (``~/.dbt`` must exist) before dbt applies keyword overrides.
        argv = [*argv, "--profiles-dir", str(self.profiles_dir)]
        forget_deprecations()  # each invocation summarises only its own deprecations, once
        cwd = os.getcwd()
        try:
            return dbtRunner(manifest=manifest, callbacks=[self.events, *self.callbacks]).invoke(
                argv, **params
            )
        finally:
            # dbt-core 1.8 leaves the process in the project dir (1.9's tasks restore the cwd); after
            # `deps` in a staging mirror that directory is deleted, and the next parse would fail.
            os.chdir(cwd)
            release_adapters()

    def _manifest_for(
        self, command: str, argv: list[str], params: dict[str, Any], invocation: Invocation
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

    def _restore_parse_cache(self, params: Mapping[str, Any], invocation: Invocation) -> Any:
        """Copy the cached partial-parse file in; return its stat to detect a rewrite later."""
        if not self.parse_cache or params.get("partial_parse") is False:
            return None
        if self.cache.restore(self._cache_key(params), invocation.target_path):
            stat = (invocation.target_path / PARTIAL_PARSE_FILE).stat()
            return (stat.st_size, stat.st_mtime_ns)
        return None

    def _store_parse_cache(self, params: Mapping[str, Any], invocation: Invocation, restored: Any) -> None:
        written = invocation.target_path / PARTIAL_PARSE_FILE
        if not self.parse_cache or not written.is_file():
            return
        stat = written.stat()
        if restored != (stat.st_size, stat.st_mtime_ns):
            self.cache.store(self._cache_key(params), invocation.target_path)

    # -- setup ----------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        return {**self.env, **self._tracking_env()}

    def _params(
        self, project_dir: Path, invocation: Invocation, overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
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

    def _install_packages(self, mirror: Path) -> None:
        self.logger.info("Installing the packages of %s (dbt deps)", self.project_dir)
        with invocation_dir() as invocation:
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
                raise DbtCommandFailedError(result)

    def _mirror_version(self) -> str:
        return _dbt_version()


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


def _normalise(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Shape keyword overrides the way dbt's click parameters expect them."""
    params: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ("select", "exclude", "resource_types", "exclude_resource_types") and value is not None:
            value = (value,) if isinstance(value, str) else tuple(value)
        params[key] = value
    return params


def _write_manifest(manifest: Any, target_path: Path) -> None:
    """Write manifest.json for an invocation that reused a manifest (dbt skips it then)."""
    with contextlib.suppress(Exception):
        manifest.writable_manifest().write(str(target_path / "manifest.json"))


def _dbt_version() -> str:
    try:
        return metadata.version("dbt-core")
    except metadata.PackageNotFoundError:  # pragma: no cover - the runner needs dbt anyway
        return ""
