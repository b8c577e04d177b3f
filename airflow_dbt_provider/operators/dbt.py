"""Operators that run dbt Core, one class per dbt command (``DbtBuildOperator``, ``DbtTestOperator``...).

Each is :class:`~airflow_dbt_provider.operators.dbt_base.DbtOperator` with its command set, plus the
arguments only that command takes. ``DbtOperator`` itself runs any command (``command="build"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from airflow.sdk import Context

from airflow_dbt_provider.artifacts import PUSHABLE_ARTIFACTS as PUSHABLE_ARTIFACTS
from airflow_dbt_provider.artifacts import decode_artifact as decode_artifact
from airflow_dbt_provider.artifacts import encode_artifact as encode_artifact
from airflow_dbt_provider.core import DbtResult
from airflow_dbt_provider.operators.dbt_base import DBT_LOGGER as DBT_LOGGER
from airflow_dbt_provider.operators.dbt_base import DbtOperator as DbtOperator

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


class _DbtStateOperator(DbtOperator):
    """A command that reads a previous invocation's artifacts from ``--state <dir>``.

    :param state: the directory with those artifacts (templated).
    """

    template_fields: Sequence[str] = (*DbtOperator.template_fields, "state")

    def __init__(self, *, state: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = str(state)

    def dbt_args(self) -> list[str]:
        """``<command> --state <dir>``."""
        return [*super().dbt_args(), "--state", self.state]


class DbtRetryOperator(_DbtStateOperator):
    """``dbt retry``: re-run what failed in a previous invocation.

    :param state: the previous invocation's ``artifacts_dir`` (holding its ``run_results.json``),
        templated.
    """

    dbt_command = "retry"


class DbtCloneOperator(_DbtStateOperator):
    """``dbt clone``: clone nodes from a previous state into the target.

    :param state: directory with the ``manifest.json`` to clone from (templated).
    """

    dbt_command = "clone"


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
