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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import yaml
from airflow.sdk import BaseOperator, Context

from airflow_dbt_provider.core import DbtCommandFailedError, DbtConfigurationError, DbtResult, DbtRunner

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
        **kwargs: Any,
    ) -> None:
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
        with (
            self._profile() as (profiles_dir, target, profile_env),
            DbtRunner(
                self.project_dir,
                profiles_dir=profiles_dir,
                target=target,
                vars=self.vars,
                env={**(self.env or {}), **profile_env},
                secrets=list(profile_env.values()),
                logger=logging.getLogger("airflow.task.operators.airflow_dbt_provider.dbt"),
                parse_cache=self.parse_cache,
                install_deps=self.install_deps,
                artifacts_dir=self.artifacts_dir,
            ) as runner,
        ):
            result = runner.invoke(self.dbt_args(), capture=self.push_artifacts, **self.dbt_params())
        return self._outcome(result, context)

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
