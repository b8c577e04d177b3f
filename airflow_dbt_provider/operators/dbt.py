"""Operators that run dbt Core in the task's own process, one class per dbt command.

Each operator is a thin layer over :class:`airflow_dbt_provider.core.DbtRunner`: it turns the
operator's arguments into dbt parameters, optionally builds the profile from an Airflow
connection, runs the command, and maps the outcome onto the task: success returns a compact
summary (the task's XCom); reported failures raise :class:`DbtCommandFailedError` naming each
failed node; an error dbt raised surfaces as :class:`DbtInvocationError` chained to dbt's own.

Nothing here imports dbt at module import, so DAG files using these operators parse quickly.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import yaml
from airflow.sdk import Asset, AssetAlias, BaseOperator, Context

from airflow_dbt_provider.compat import AIRFLOW_VERSION, task_state_store
from airflow_dbt_provider.core import DbtCommandFailedError, DbtConfigurationError, DbtResult, DbtRunner
from airflow_dbt_provider.core.cancel import cancel_open_queries, interrupt_invocation
from airflow_dbt_provider.core.retry_state import (
    RETRYABLE_COMMANDS,
    STATE_KEY,
    ArtifactsDirStore,
    retry_state,
    usable,
    write_run_results,
)
from airflow_dbt_provider.core.subprocess_runner import SubprocessDbtRunner
from airflow_dbt_provider.lineage import openlineage_enabled

#: What OpenLineage needs from a run (kept in memory until the listener asks).
_LINEAGE_ARTIFACTS = ("run_results.json", "manifest.json")
#: The logger dbt's lines (and the runner's own) go to in the task log.
DBT_LOGGER = "airflow.task.operators.airflow_dbt_provider.dbt"

#: Artifact files an operator can push to XCom (``push_artifacts``).
PUSHABLE_ARTIFACTS = ("run_results.json", "manifest.json", "catalog.json", "sources.json")
#: Above this size (bytes of JSON) an artifact goes to XCom gzip-compressed and base64-encoded.
XCOM_COMPRESS_ABOVE = 64 * 1024

_SELECTING = frozenset(
    {
        "build",
        "clone",
        "compile",
        "docs generate",
        "list",
        "ls",
        "run",
        "seed",
        "show",
        "snapshot",
        "source freshness",
        "test",
    }
)
_FULL_REFRESH = frozenset({"build", "clone", "compile", "retry", "run", "seed", "show"})
_NO_THREADS = frozenset({"clean", "debug", "deps", "list", "ls"})


def _supports(command: str) -> frozenset[str]:
    """Which common operator arguments dbt's ``command`` accepts."""
    supported = {"vars", "fail_fast"}
    if command in _SELECTING:
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
    :param project_dir: the dbt project directory (templated).
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
        for a later :class:`DbtRetryOperator` or :class:`DbtCloneOperator` ``state``.
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
        self._runner: DbtRunner | SubprocessDbtRunner | None = None
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
        if isinstance(self.command, str) and "{{" in self.command:
            return  # rendered at run time; checked then
        command = self._command_name()
        if self.retry_from_failure and command not in RETRYABLE_COMMANDS:
            raise ValueError(
                f"retry_from_failure=True needs a command dbt retry can repeat "
                f"({', '.join(sorted(RETRYABLE_COMMANDS))}), not dbt {command}"
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
        """Run the command; return the summary, or raise naming what failed."""
        args, params = self.dbt_args(), self.dbt_params()
        store = self._retry_store(context)
        capture = list(self.push_artifacts)
        if store is not None:
            capture.append("run_results.json")
        if self.asset_alias or openlineage_enabled():
            capture += ["run_results.json", "manifest.json"]
        with (
            self._profile() as (profiles_dir, target, profile_env),
            tempfile.TemporaryDirectory(prefix="dbt-retry-state-") as state_dir,
        ):
            runner = self._make_runner(profiles_dir, target, profile_env)
            if store is not None:
                args, params = self._retry_or_not(store, context, Path(state_dir), args, params)
            self._runner = runner
            try:
                result = runner.invoke(args, capture=tuple(dict.fromkeys(capture)), **params)
            finally:
                self._runner = None
        if store is not None:
            self._remember_for_retry(store, result)
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
        common: dict[str, Any] = {
            "profiles_dir": profiles_dir,
            "target": target,
            "vars": self.vars,
            "env": {**(self.env or {}), **profile_env},
            "secrets": list(profile_env.values()),
            "logger": logging.getLogger(DBT_LOGGER),
            "install_deps": self.install_deps,
            "artifacts_dir": self.artifacts_dir,
        }
        if self.dbt_executable:
            return SubprocessDbtRunner(self.dbt_executable, self.project_dir, **common)
        return DbtRunner(self.project_dir, parse_cache=self.parse_cache, **common)

    # -- retry only what failed --------------------------------------------------------------------

    def _retry_store(self, context: Context) -> Any:
        """Where ``retry_from_failure`` keeps its state: the task state store, else ``artifacts_dir``."""
        if not self.retry_from_failure:
            return None
        store = task_state_store(context)
        if store is not None:
            return store
        if self.artifacts_dir:
            ti = context["ti"]
            owner = json.dumps([ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1)])
            self.log.info(
                "Airflow %s has no task state store (3.3 adds it): retry_from_failure keeps its "
                "state in artifacts_dir %s, which every try of this task must reach",
                AIRFLOW_VERSION,
                self.artifacts_dir,
            )
            return ArtifactsDirStore(self.artifacts_dir, owner)
        self.log.warning(
            "retry_from_failure=True has no effect: Airflow %s has no task state store (3.3 adds it) "
            "and no artifacts_dir is set; set artifacts_dir to a directory every try reaches, and "
            "a retry runs only what failed",
            AIRFLOW_VERSION,
        )
        return None

    def _retry_or_not(
        self, store: Any, context: Context, state_dir: Path, args: list[str], params: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any]]:
        """``dbt retry`` against the previous try's results, when there is a failed previous try."""
        try_number = int(getattr(context["ti"], "try_number", 1) or 1)
        state = store.get(STATE_KEY) if try_number > 1 else None
        if not usable(state):
            return args, params
        write_run_results(state, state_dir)
        nodes = state["retry_nodes"]
        self.log.info(
            "Try %d: dbt retry runs only the %d node(s) that failed or were skipped before: %s",
            try_number,
            len(nodes),
            ", ".join(nodes[:20]) + (" ..." if len(nodes) > 20 else ""),
        )
        # dbt retry repeats the previous invocation's own arguments (selection, vars, flags).
        return ["retry", "--state", str(state_dir)], {}

    def _remember_for_retry(self, store: Any, result: DbtResult) -> None:
        raw = result.captured.get("run_results.json")
        state = retry_state(raw) if raw is not None and not result.success else None
        if state is None:
            store.delete(STATE_KEY)
            return
        store.set(STATE_KEY, state)
        self.log.info(
            "Kept %d failed/skipped node(s) in the task state store for a retry", len(state["retry_nodes"])
        )

    # -- assets ------------------------------------------------------------------------------------

    def _emit_assets(self, context: Context, result: DbtResult) -> None:
        """One Asset event per relation built, through the ``asset_alias`` outlet."""
        from airflow_dbt_provider.assets import built_assets

        try:
            run_results = json.loads(result.captured["run_results.json"])
            manifest = json.loads(result.captured["manifest.json"])
            host, port = self._warehouse_address()
            built = built_assets(run_results, manifest, host=host, port=port)
        except (KeyError, ValueError) as exc:
            self.log.warning("dbt %s: no Asset events, artifacts unusable: %s", result.command, exc)
            return
        events = context["outlet_events"][AssetAlias(name=str(self.asset_alias))]
        for asset in built:
            events.add(Asset(uri=asset.uri), extra={"unique_id": asset.unique_id})
        self.log.info("Emitted %d Asset event(s) through alias %r", len(built), self.asset_alias)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage inputs/outputs of the run (called by the OpenLineage provider, if installed)."""
        from airflow_dbt_provider.lineage import operator_lineage

        if set(self._lineage_artifacts) != set(_LINEAGE_ARTIFACTS):
            return None
        host, port = self._warehouse_address()
        return operator_lineage(
            json.loads(self._lineage_artifacts["run_results.json"]),
            json.loads(self._lineage_artifacts["manifest.json"]),
            host=host,
            port=port,
        )

    def _warehouse_address(self) -> tuple[str | None, int | None]:
        """The warehouse's host and port when the profile came from a connection (never credentials)."""
        if not self.profile_conn_id:
            return None, None
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(self.profile_conn_id)
        return connection.host or None, connection.port or None

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
        return summary

    @contextmanager
    def _profile(self) -> Iterator[tuple[str | None, str | None, dict[str, str]]]:
        """``(profiles_dir, target, env)``: the user's, or a private one from the connection."""
        if not self.profile_conn_id:
            yield self.profiles_dir, self.target, {}
            return
        from airflow.sdk import BaseHook

        from airflow_dbt_provider.profiles import target_from_connection, write_profiles_dir

        connection = BaseHook.get_connection(self.profile_conn_id)
        dbt_target = target_from_connection(
            connection,
            profile_name=_project_profile_name(Path(self.project_dir)),
            target_name=self.target or "airflow",
            overrides=self.profile_overrides,
        )
        private = write_profiles_dir(dbt_target)  # 0700 directory, 0600 file, no secret inside
        try:
            yield str(private), dbt_target.target_name, dict(dbt_target.env)
        finally:
            shutil.rmtree(private, ignore_errors=True)


def _project_profile_name(project_dir: Path) -> str:
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise DbtConfigurationError(
            f"{str(project_dir)!r} has no dbt_project.yml; set project_dir to the dbt project directory"
        )
    profile = (yaml.safe_load(path.read_text()) or {}).get("profile")
    if not profile:
        raise DbtConfigurationError(
            f"{path} sets no profile:, which profile_conn_id needs to name the profile"
        )
    return str(profile)


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def encode_artifact(raw: bytes) -> Any:
    """An artifact for XCom: parsed JSON when small, gzip+base64 when large."""
    if len(raw) <= XCOM_COMPRESS_ABOVE:
        return json.loads(raw)
    return {"encoding": "gzip+base64", "data": base64.b64encode(gzip.compress(raw)).decode("ascii")}


def decode_artifact(value: Any) -> Any:
    """The inverse of :func:`encode_artifact`: the artifact's parsed JSON."""
    if isinstance(value, dict) and value.get("encoding") == "gzip+base64":
        return json.loads(gzip.decompress(base64.b64decode(value["data"])))
    return value


# -- one operator per dbt command -------------------------------------------------------------------


class DbtBuildOperator(DbtOperator):
    """``dbt build``: seeds, models, snapshots and tests in DAG order."""

    dbt_command = "build"


class DbtRunOperator(DbtOperator):
    """``dbt run``: build the selected models."""

    dbt_command = "run"


class DbtTestOperator(DbtOperator):
    """``dbt test``: run data and unit tests; a failing test fails the task, naming it."""

    dbt_command = "test"


class DbtSeedOperator(DbtOperator):
    """``dbt seed``: load the CSV seeds."""

    dbt_command = "seed"


class DbtSnapshotOperator(DbtOperator):
    """``dbt snapshot``: record slowly changing dimensions."""

    dbt_command = "snapshot"


class DbtCompileOperator(DbtOperator):
    """``dbt compile``: render SQL without running it."""

    dbt_command = "compile"


class DbtLsOperator(DbtOperator):
    """``dbt ls``: list resources; the names are in the summary's ``resources``.

    :param resource_types: limit to these resource types (``model``, ``test``, ...).
    :param output_format: dbt's ``--output``: ``selector`` (default), ``name``, ``path`` or
        ``json`` (``output`` is taken by Airflow's ``BaseOperator.output``).
    """

    dbt_command = "ls"
    template_fields: Sequence[str] = (*DbtOperator.template_fields, "resource_types")

    def __init__(
        self,
        *,
        resource_types: Sequence[str] | None = None,
        output_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.resource_types = list(resource_types) if resource_types else None
        self.output_format = output_format

    def dbt_params(self) -> dict[str, Any]:
        """Adds ``--resource-type`` and ``--output``."""
        params = super().dbt_params()
        if self.resource_types:
            params["resource_types"] = self.resource_types
        if self.output_format:
            params["output"] = self.output_format
        return params

    def _outcome(self, result: DbtResult, context: Context) -> dict[str, Any]:
        summary = super()._outcome(result, context)
        summary["resources"] = list(result.output or [])
        return summary


class DbtParseOperator(DbtOperator):
    """``dbt parse``: validate the project and write its manifest (and warm the parse cache)."""

    dbt_command = "parse"


class DbtDepsOperator(DbtOperator):
    """``dbt deps``: install packages into the project (needs a writable project directory).

    Other operators install packages themselves with ``install_deps=True`` without writing into
    the project; use this operator when you manage ``dbt_packages`` in the project on purpose.
    """

    dbt_command = "deps"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("install_deps", False)
        super().__init__(**kwargs)


class DbtDocsGenerateOperator(DbtOperator):
    """``dbt docs generate``: write ``catalog.json`` and ``index.html`` (keep them with
    ``artifacts_dir``).

    :param static: also write a single-file ``static_index.html``.
    """

    dbt_command = "docs generate"

    def __init__(self, *, static: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.static = static

    def dbt_params(self) -> dict[str, Any]:
        """Adds ``--static``."""
        params = super().dbt_params()
        if self.static:
            params["static"] = True
        return params


class DbtSourceFreshnessOperator(DbtOperator):
    """``dbt source freshness``: a source past its ``error_after`` fails the task."""

    dbt_command = "source freshness"


class DbtRunOperationOperator(DbtOperator):
    """``dbt run-operation``: call a macro.

    :param macro: the macro's name (templated).
    :param args: the macro's keyword arguments (templated); sent to dbt as YAML.
    """

    dbt_command = "run-operation"
    template_fields: Sequence[str] = (*DbtOperator.template_fields, "macro", "args")
    template_fields_renderers = {**DbtOperator.template_fields_renderers, "args": "json"}

    def __init__(self, *, macro: str, args: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.macro = macro
        self.args = dict(args) if args else None

    def dbt_args(self) -> list[str]:
        """``run-operation <macro> [--args <yaml>]``."""
        words = [*super().dbt_args(), self.macro]
        if self.args:
            words += ["--args", yaml.safe_dump(self.args, default_flow_style=True).strip()]
        return words


class DbtRetryOperator(DbtOperator):
    """``dbt retry``: re-run what failed in a previous invocation.

    :param state: the previous invocation's ``artifacts_dir`` (holding its ``run_results.json``),
        templated.
    """

    dbt_command = "retry"
    template_fields: Sequence[str] = (*DbtOperator.template_fields, "state")

    def __init__(self, *, state: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = str(state)

    def dbt_args(self) -> list[str]:
        """``retry --state <dir>``."""
        return [*super().dbt_args(), "--state", self.state]


class DbtCloneOperator(DbtOperator):
    """``dbt clone``: clone nodes from a previous state into the target.

    :param state: directory with the ``manifest.json`` to clone from (templated).
    """

    dbt_command = "clone"
    template_fields: Sequence[str] = (*DbtOperator.template_fields, "state")

    def __init__(self, *, state: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = str(state)

    def dbt_args(self) -> list[str]:
        """``clone --state <dir>``."""
        return [*super().dbt_args(), "--state", self.state]


class DbtShowOperator(DbtOperator):
    """``dbt show``: preview a model's or an inline query's rows (printed in the task log).

    :param inline: a SQL query to preview instead of ``select`` (templated).
    :param limit: how many rows to preview.
    """

    dbt_command = "show"
    template_fields: Sequence[str] = (*DbtOperator.template_fields, "inline")

    def __init__(self, *, inline: str | None = None, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inline = inline
        self.limit = limit

    def dbt_params(self) -> dict[str, Any]:
        """Adds ``--inline`` and ``--limit``."""
        params = super().dbt_params()
        if self.inline:
            params["inline"] = self.inline
        if self.limit is not None:
            params["limit"] = self.limit
        return params


class DbtDebugOperator(DbtOperator):
    """``dbt debug``: check the installation, project, profile and connection."""

    dbt_command = "debug"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("install_deps", False)
        super().__init__(**kwargs)
