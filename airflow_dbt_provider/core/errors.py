"""Errors raised by the dbt Core runner.

They carry no Airflow types so the core stays usable (and testable) outside Airflow; the
operators let them propagate, which fails the task with the message written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_dbt_provider.text import one_line, shorten

if TYPE_CHECKING:
    from airflow_dbt_provider.core.results import DbtResult


class DbtCoreError(Exception):
    """Base class of every error the dbt Core runner raises."""


class DbtConfigurationError(DbtCoreError, ValueError):
    """The runner was configured with something unusable (a missing project dir, bad arguments).

    Raised before dbt runs, with a message that says what is wrong and how to fix it.
    """


class DbtInvocationError(DbtCoreError):
    """dbt could not complete the command: it raised instead of reporting node results.

    This is dbt's "unhandled" outcome (``dbtRunnerResult.exception`` set): a compilation error,
    an unreadable profile, a failed connection. dbt's own exception is chained as ``__cause__``.
    """

    def __init__(
        self, command: str, exception: BaseException, *, redact: Callable[[str], str] | None = None
    ) -> None:
        self.command = command
        self.exception = exception
        detail = str(exception).strip() or type(exception).__name__
        if redact is not None:
            detail = redact(detail)
        super().__init__(f"dbt {command} raised an error: {detail}")


class DbtCommandFailedError(DbtCoreError):
    """dbt ran the command and reported failures (``success=False`` without an exception).

    The message names each failed node and dbt's message for it, so the task log's last line
    says what broke without scrolling back through dbt's output.
    """

    #: How many failed nodes the message lists before summarising the rest.
    MAX_LISTED = 10
    #: How many characters of each node's message the error keeps.
    MAX_MESSAGE = 300

    def __init__(self, result: DbtResult) -> None:
        self.result = result
        super().__init__(self._describe(result))

    @classmethod
    def _describe(cls, result: DbtResult) -> str:
        failed = result.failed_nodes
        if not failed:
            reason = "; ".join(result.error_messages[-3:]) or "dbt reported failure without node results"
            return f"dbt {result.command} failed: {shorten(reason, cls.MAX_MESSAGE * 2)}"
        lines = [f"dbt {result.command} failed: {len(failed)} node(s) failed or errored:"]
        for node in failed[: cls.MAX_LISTED]:
            message = shorten(one_line(node.message or ""), cls.MAX_MESSAGE)
            lines.append(f"  {node.unique_id} [{node.status}]: {message}")
        if len(failed) > cls.MAX_LISTED:
            lines.append(f"  ... and {len(failed) - cls.MAX_LISTED} more (see run_results.json)")
        return "\n".join(lines)


class DbtEmptySelectionError(DbtCoreError):
    """The selection matched no node, so nothing ran, and the caller asked for that to fail.

    dbt itself succeeds on an empty selection; ``fail_on_empty_selection=True`` turns it into
    this error, which names the selection as the caller gave it.
    """

    def __init__(self, command: str, selection: Mapping[str, Any]) -> None:
        self.command = command
        self.selection = dict(selection)
        given = ", ".join(f"{name}={value!r}" for name, value in self.selection.items())
        chosen = f"the selection ({given})" if given else "the project (no select, exclude or selector)"
        super().__init__(
            f"dbt {command}: {chosen} matched no nodes, so nothing ran, and "
            f"fail_on_empty_selection=True makes that a failure. Check select, exclude and selector "
            f"against the project (DbtLsOperator with the same arguments lists what they match), or "
            f"set fail_on_empty_selection=False to let an empty selection succeed"
        )
