"""``DbtOperator``: run one dbt command in the task's own process (or a child process).

A thin layer over :class:`airflow_dbt_provider.core.DbtRunner`: it turns the operator's arguments
into dbt parameters, gets the profile (:mod:`airflow_dbt_provider.profiles.task_profile`), runs the
command, and maps the outcome onto the task: success returns a compact summary (the task's XCom);
reported failures raise :class:`DbtCommandFailedError` naming each failed node; an error dbt raised
surfaces as :class:`DbtInvocationError` chained to dbt's own. ``retry_from_failure`` is
:mod:`airflow_dbt_provider.retry_from_failure`; pushed artifacts are :mod:`airflow_dbt_provider.artifacts`.

Nothing here imports dbt at module import, so DAG files using these operators parse quickly.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import AssetAlias, BaseOperator, Context

from airflow_dbt_provider.artifacts import PUSHABLE_ARTIFACTS, encode_artifact
from airflow_dbt_provider.core import DbtCommandFailedError, DbtResult, DbtRunner
from airflow_dbt_provider.core.cancel import cancel_open_queries, interrupt_invocation
from airflow_dbt_provider.core.errors import DbtEmptySelectionError
from airflow_dbt_provider.core.retry_state import (
    RETRYABLE_COMMANDS,
)
from airflow_dbt_provider.core.runner import RUNS_SELECTED_NODES, SELECTING_COMMANDS
from airflow_dbt_provider.core.subprocess_runner import SubprocessDbtRunner
from airflow_dbt_provider.lineage import openlineage_enabled
from airflow_dbt_provider.object_storage import is_url
from airflow_dbt_provider.object_storage.task_storage import TaskStorage, task_storage
from airflow_dbt_provider.profiles.task_profile import task_profile, warehouse_address
from airflow_dbt_provider.retry_from_failure import RetryFromFailure

#: What OpenLineage needs from a run (kept in memory until the listener asks).
_LINEAGE_ARTIFACTS = ("run_results.json", "manifest.json")
#: The logger dbt's lines (and the runner's own) go to in the task log.
DBT_LOGGER = "airflow.task.operators.airflow_dbt_provider.dbt"

_FULL_REFRESH = frozenset({"build", "clone", "compile", "retry", "run", "seed", "show"})
_NO_THREADS = frozenset({"clean", "debug", "deps", "list", "ls"})


def _supports(command: str) -> frozenset[str]:
    """Which common operator arguments dbt's ``command`` accepts."""
    supported = {"vars", "fail_fast"}
    if command in SELECTING_COMMANDS:
        supported |= {"select", "exclude", "selector"}
    if command in _FULL_REFRESH:
        supported.add("full_refresh")
    if command not in _NO_THREADS:
        supported.add("threads")
    return frozenset(supported)


class DbtOperator(BaseOperator):
    """Run one dbt command in process, e.g. ``DbtOperator(command="build", select="marts")``.

    :param command: the dbt command with any extra CLI args (``"source freshness"``,
        ``"run --empty"``, or a list of words).
    :param project_dir: the dbt project directory, or an object-storage URL of it (templated),
        e.g. ``s3://aws_conn@bucket/jaffle_shop``: each worker fetches a version once into its
        cache root and runs it there (``docs/scale_out.md``).
    :param profiles_dir: directory holding ``profiles.yml`` (templated); default: the project
        directory when it has one, else ``~/.dbt``. Not needed with ``profile_conn_id``.
    :param target: the profile target (templated).
    :param profile_conn_id: build the profile from this Airflow connection instead of
        ``profiles.yml``; secrets reach dbt only through environment variables.
    :param profile_overrides: keys to set on the target built from ``profile_conn_id``.
    :param select: dbt ``--select`` (a string or a list; templated).
    :param exclude: dbt ``--exclude`` (a string or a list; templated).
    :param selector: a YAML selector name (templated).
    :param vars: dbt vars (templated).
    :param full_refresh: ``--full-refresh``.
    :param fail_fast: ``--fail-fast``.
    :param threads: ``--threads``.
    :param dbt_flags: any other dbt parameter by its Python name, e.g. ``{"empty": True}``.
    :param env: environment variables set only while dbt runs (templated).
    :param install_deps: run ``dbt deps`` first when packages are declared but not installed,
        into a mirror of the project (the project directory is never written).
    :param push_artifacts: artifact files to push to XCom under their stem
        (``run_results.json`` → key ``run_results``); large ones are gzip+base64 encoded.
    :param artifacts_dir: keep the artifacts and ``dbt.log`` in this directory (templated), e.g.
        for a later :class:`DbtRetryOperator` or :class:`DbtCloneOperator` ``state``; or at an
        object-storage URL, uploaded when the task ends (success, failure, timeout or kill).
    :param parse_cache: keep dbt's partial-parse file across tasks.
    :param dbt_executable: run dbt as a child process with this executable (templated), e.g. the
        ``dbt`` of another virtualenv when dbt's dependencies conflict with Airflow's. Results,
        log lines and ``on_kill`` behave as in process; see ``docs/dbt_core_production.md``.
    :param retry_from_failure: on an Airflow retry, run ``dbt retry`` so only the nodes that failed
        or were skipped in the previous try run again. What it needs is kept in Airflow's task
        state store (Airflow >= 3.3), which every worker reaches; on older Airflow in
        ``artifacts_dir`` (set it to a directory every try reaches).
    :param asset_alias: emit one Asset event per model, seed and snapshot built, through an
        ``AssetAlias`` of this name (added to the task's outlets).
    :param fail_on_empty_selection: fail the task when the selection matches no node (dbt itself
        succeeds having done nothing, and the task logs a warning); for the commands that run
        selected nodes (build, run, test, seed, snapshot, compile, clone, docs generate, source
        freshness).
    """

    template_fields: Sequence[str] = (
        "command",
        "project_dir",
        "profiles_dir",
        "target",
        "select",
        "exclude",
        "selector",
        "vars",
        "env",
        "dbt_flags",
        "artifacts_dir",
        "dbt_executable",
    )
    template_fields_renderers = {"vars": "json", "env": "json", "dbt_flags": "json"}
    ui_color = "#ff694b"
    #: Set by the per-command subclasses; ``DbtOperator`` takes it as an argument.
    dbt_command: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        project_dir: str | os.PathLike[str],
        command: str | Sequence[str] | None = None,
        profiles_dir: str | os.PathLike[str] | None = None,
        target: str | None = None,
        profile_conn_id: str | None = None,
        profile_overrides: Mapping[str, Any] | None = None,
        select: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        selector: str | None = None,
        vars: Mapping[str, Any] | None = None,
        full_refresh: bool | None = None,
        fail_fast: bool | None = None,
        threads: int | None = None,
        dbt_flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        install_deps: bool = True,
        push_artifacts: Sequence[str] = (),
        artifacts_dir: str | os.PathLike[str] | None = None,
        parse_cache: bool = True,
        dbt_executable: str | os.PathLike[str] | None = None,
        retry_from_failure: bool = False,
        asset_alias: str | None = None,
        fail_on_empty_selection: bool = False,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), AssetAlias(name=asset_alias)]
        super().__init__(**kwargs)
        command = command if command is not None else self.dbt_command
        if not command:
            raise ValueError(f"{type(self).__name__} needs command=, e.g. command='build'")
        self.command: str | list[str] = command if isinstance(command, str) else list(command)
        self.project_dir = str(project_dir)
        self.profiles_dir = str(profiles_dir) if profiles_dir is not None else None
        self.target = target
        self.profile_conn_id = profile_conn_id
        self.profile_overrides = dict(profile_overrides) if profile_overrides else None
        self.select = select
        self.exclude = exclude
        self.selector = selector
        self.vars = dict(vars) if vars else None
        self.full_refresh = full_refresh
        self.fail_fast = fail_fast
        self.threads = threads
        self.dbt_flags = dict(dbt_flags) if dbt_flags else None
        self.env = dict(env) if env else None
        self.install_deps = install_deps
        self.push_artifacts = tuple(push_artifacts)
        self.artifacts_dir = str(artifacts_dir) if artifacts_dir is not None else None
        self.parse_cache = parse_cache
        self.dbt_executable = str(dbt_executable) if dbt_executable is not None else None
        self.retry_from_failure = retry_from_failure
        self.asset_alias = asset_alias
        self.fail_on_empty_selection = fail_on_empty_selection
        self._runner: DbtRunner | SubprocessDbtRunner | None = None
        self._storage: TaskStorage | None = None
        self._lineage_artifacts: dict[str, bytes] = {}
        self._check_arguments()

    # -- validation at DAG parse time --------------------------------------------------------------

    def _check_arguments(self) -> None:
        unknown = [name for name in self.push_artifacts if name not in PUSHABLE_ARTIFACTS]
        if unknown:
            raise ValueError(
                f"push_artifacts={unknown!r} is not supported; choose from {list(PUSHABLE_ARTIFACTS)}"
            )
        if self.profile_conn_id and self.profiles_dir:
            raise ValueError("Pass either profile_conn_id or profiles_dir, not both")
        if is_url(self.profiles_dir):
            raise ValueError(
                f"profiles_dir={self.profiles_dir!r}: profiles_dir must be a local directory; with the "
                "project on object storage, keep profiles.yml in the project or use profile_conn_id"
            )
        if isinstance(self.command, str) and "{{" in self.command:
            return  # rendered at run time; checked then
        command = self._command_name()
        if self.retry_from_failure and command not in RETRYABLE_COMMANDS:
            raise ValueError(
                f"retry_from_failure=True needs a command dbt retry can repeat "
                f"({', '.join(sorted(RETRYABLE_COMMANDS))}), not dbt {command}"
            )
        if self.fail_on_empty_selection and command not in RUNS_SELECTED_NODES:
            raise ValueError(
                f"fail_on_empty_selection=True needs a command that runs selected nodes "
                f"({', '.join(sorted(RUNS_SELECTED_NODES))}), not dbt {command}"
            )
        supported = _supports(command)
        given = {
            "select": self.select,
            "exclude": self.exclude,
            "selector": self.selector,
            "full_refresh": self.full_refresh,
            "threads": self.threads,
        }
        rejected = sorted(
            name for name, value in given.items() if value is not None and name not in supported
        )
        if rejected:
            raise ValueError(
                f"{type(self).__name__}: dbt {command} does not accept {', '.join(rejected)}; "
                "remove the argument (or pass it through dbt_flags if your dbt version supports it)"
            )

    def _words(self) -> list[str]:
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)

    def _command_name(self) -> str:
        from airflow_dbt_provider.core.runner import command_name

        return command_name(self._words())

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the command; return the summary, or raise naming what failed.

        URLs in ``project_dir``/``artifacts_dir`` become local paths first
        (:mod:`airflow_dbt_provider.object_storage`); artifacts go up when the task ends.
        """
        with task_storage(
            project_dir=self.project_dir,
            artifacts_dir=self.artifacts_dir,
            log=self.log,
            shared_parse_cache=self.parse_cache and not self.dbt_executable,
        ) as storage:
            self._storage = storage
            try:
                return self._execute_in(storage, context)
            finally:
                self._storage = None

    def _execute_in(self, storage: TaskStorage, context: Context) -> dict[str, Any]:
        args, params = self.dbt_args(), self.dbt_params()
        retry = RetryFromFailure(context, self.log, self.artifacts_dir) if self.retry_from_failure else None
        if retry is not None and not retry.available:
            retry = None
        capture = list(self.push_artifacts)
        if retry is not None:
            capture.append("run_results.json")
        if self.asset_alias or openlineage_enabled():
            capture += ["run_results.json", "manifest.json"]
        with (
            task_profile(
                project_dir=storage.project_dir,
                profiles_dir=self.profiles_dir,
                target=self.target,
                profile_conn_id=self.profile_conn_id,
                overrides=self.profile_overrides,
            ) as (profiles_dir, target, profile_env),
            tempfile.TemporaryDirectory(prefix="dbt-retry-state-") as state_dir,
        ):
            runner = self._make_runner(profiles_dir, target, profile_env)
            if retry is not None:
                args, params = retry.plan(Path(state_dir), args, params)
            self._runner = runner
            try:
                result = runner.invoke(args, capture=tuple(dict.fromkeys(capture)), **params)
            finally:
                self._runner = None
        if retry is not None:
            retry.remember(result)
        self._lineage_artifacts = {k: v for k, v in result.captured.items() if k in _LINEAGE_ARTIFACTS}
        if self.asset_alias and result.success:
            self._emit_assets(context, result)
        return self._outcome(result, context)

    def on_kill(self) -> None:
        """Stop dbt and cancel its open warehouse queries (Airflow calls this on SIGTERM).

        In a child process (``dbt_executable``) dbt's process group gets SIGINT, on which dbt
        cancels its queries itself, then SIGKILL. In process the adapter's open connections are
        cancelled here, then the invocation is interrupted as Ctrl-C would.
        """
        runner = self._runner
        if runner is None:
            return
        if isinstance(runner, SubprocessDbtRunner):
            runner.terminate()
            return
        cancel_open_queries(logging.getLogger(DBT_LOGGER))
        interrupt_invocation()

    def _make_runner(
        self, profiles_dir: str | None, target: str | None, profile_env: dict[str, str]
    ) -> DbtRunner | SubprocessDbtRunner:
        storage = self._storage or TaskStorage(self.project_dir, self.artifacts_dir)
        common: dict[str, Any] = {
            "profiles_dir": profiles_dir,
            "target": target,
            "vars": self.vars,
            "env": {**(self.env or {}), **profile_env},
            "secrets": list(profile_env.values()),
            "logger": logging.getLogger(DBT_LOGGER),
            "install_deps": self.install_deps,
            "artifacts_dir": storage.artifacts_dir,
        }
        if self.dbt_executable:
            return SubprocessDbtRunner(self.dbt_executable, storage.project_dir, **common)
        return DbtRunner(
            storage.project_dir,
            parse_cache=self.parse_cache,
            remote_parse_cache=storage.remote_parse_cache,
            **common,
        )

    # -- assets ------------------------------------------------------------------------------------

    def _emit_assets(self, context: Context, result: DbtResult) -> None:
        """One Asset event per relation built, through the ``asset_alias`` outlet."""
        from airflow_dbt_provider.assets import built_assets, emit_asset_events

        try:
            run_results = json.loads(result.captured["run_results.json"])
            manifest = json.loads(result.captured["manifest.json"])
            host, port = warehouse_address(self.profile_conn_id)
            built = built_assets(run_results, manifest, host=host, port=port)
        except (KeyError, ValueError) as exc:
            self.log.warning("dbt %s: no Asset events, artifacts unusable: %s", result.command, exc)
            return
        emit_asset_events(context, str(self.asset_alias), built, self.log)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage inputs/outputs of the run (called by the OpenLineage provider, if installed)."""
        from airflow_dbt_provider.lineage import operator_lineage

        if set(self._lineage_artifacts) != set(_LINEAGE_ARTIFACTS):
            return None
        host, port = warehouse_address(self.profile_conn_id)
        return operator_lineage(
            json.loads(self._lineage_artifacts["run_results.json"]),
            json.loads(self._lineage_artifacts["manifest.json"]),
            host=host,
            port=port,
        )

    def dbt_args(self) -> list[str]:
        """The dbt CLI words: the command, then what the subclass adds."""
        return self._words()

    def dbt_params(self) -> dict[str, Any]:
        """dbt parameters from the operator's arguments (only those set)."""
        params: dict[str, Any] = {
            "select": _as_list(self.select),
            "exclude": _as_list(self.exclude),
            "selector": self.selector,
            "full_refresh": self.full_refresh,
            "fail_fast": self.fail_fast,
            "threads": self.threads,
        }
        params = {key: value for key, value in params.items() if value is not None}
        params.update(self.dbt_flags or {})
        return params

    def _outcome(self, result: DbtResult, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        for name in self.push_artifacts:
            if name in result.captured:
                ti.xcom_push(key=Path(name).stem, value=encode_artifact(result.captured[name]))
        summary = result.summary()
        self.log.info("dbt %s: %s", result.command, json.dumps(summary["counts"]))
        if not result.success:
            ti.xcom_push(key="dbt_summary", value=summary)
            raise DbtCommandFailedError(result)
        if result.empty_selection and self.fail_on_empty_selection:
            raise DbtEmptySelectionError(result.command, self._selection_arguments())
        return summary

    def _selection_arguments(self) -> dict[str, Any]:
        """The arguments that chose the nodes, as the user passed them (for error messages)."""
        given = {"select": self.select, "exclude": self.exclude, "selector": self.selector}
        given = {name: value for name, value in given.items() if value is not None}
        if len(self._words()) > len(self._command_name().split()):
            given["command"] = self.command  # may hold --select/--exclude of its own
        return given


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)
