"""Typed results of a dbt invocation and the one function that maps dbt's outcome onto them.

dbt's ``dbtRunnerResult`` has three shapes: success, a handled failure (``success=False`` with
node results) and an unhandled error (``exception`` set). :func:`map_runner_result` turns them
into a :class:`DbtResult` or a chained :class:`DbtInvocationError`, in one place, so the rule is
tested once and every caller agrees on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pendulum

from airflow_dbt_provider.core.errors import DbtInvocationError
from airflow_dbt_provider.text import one_line, shorten

#: Node statuses that make a command fail (dbt's RunStatus/TestStatus/FreshnessStatus values).
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


@dataclass(frozen=True)
class NodeResult:
    """One node's outcome, in the terms of ``run_results.json``."""

    unique_id: str
    status: str
    message: str | None = None
    execution_time: float = 0.0
    rows_affected: int | None = None
    failures: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    relation_name: str | None = None

    @classmethod
    def from_dbt(cls, item: Any) -> NodeResult:
        """From one of dbt's own result objects (``RunResult``, ``RunResultOutput``), in process."""
        timing = {t.name: t for t in (getattr(item, "timing", None) or [])}
        execute = timing.get("execute") or timing.get("compile")
        adapter_response = getattr(item, "adapter_response", None) or {}
        rows = adapter_response.get("rows_affected") if isinstance(adapter_response, dict) else None
        return cls(
            unique_id=item.node.unique_id,
            status=str(getattr(item.status, "value", item.status)),
            message=getattr(item, "message", None),
            execution_time=float(getattr(item, "execution_time", 0.0) or 0.0),
            rows_affected=_rows(rows),
            failures=getattr(item, "failures", None),
            started_at=getattr(execute, "started_at", None),
            completed_at=getattr(execute, "completed_at", None),
            relation_name=getattr(item.node, "relation_name", None),
        )

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> NodeResult:
        """From one entry of ``run_results.json``'s ``results`` (any schema version since v4)."""
        timing = {t.get("name"): t for t in item.get("timing") or []}
        execute = timing.get("execute") or timing.get("compile") or {}
        adapter_response = item.get("adapter_response") or {}
        return cls(
            unique_id=str(item["unique_id"]),
            status=str(item.get("status")),
            message=item.get("message"),
            execution_time=float(item.get("execution_time") or 0.0),
            rows_affected=_rows(adapter_response.get("rows_affected")),
            failures=item.get("failures"),
            started_at=_timestamp(execute.get("started_at")),
            completed_at=_timestamp(execute.get("completed_at")),
            relation_name=item.get("relation_name"),
        )

    @property
    def failed(self) -> bool:
        """Whether this node makes the command fail."""
        return self.status in FAILED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (timestamps as ISO 8601)."""
        return {
            "unique_id": self.unique_id,
            "status": self.status,
            "message": self.message,
            "execution_time": round(self.execution_time, 3),
            "rows_affected": self.rows_affected,
            "failures": self.failures,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "relation_name": self.relation_name,
        }


@dataclass(frozen=True)
class DbtResult:
    """What one dbt invocation produced.

    ``output`` is dbt's own result object for commands whose answer is not a node list (the
    ``Manifest`` for ``parse``, the resource names for ``ls``, ``True``/``False`` for
    ``debug``); it is left out of ``repr`` because it can be large. ``captured`` holds the bytes
    of the artifact files the caller asked for (``run_results.json``), read before the
    invocation's temporary directory was removed. ``empty_selection`` is set when a command that
    runs selected nodes (``run``, ``build``, ...) selected none, so nothing ran.
    """

    command: str
    success: bool
    nodes: tuple[NodeResult, ...] = ()
    elapsed: float = 0.0
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    error_messages: tuple[str, ...] = ()
    output: Any = field(default=None, repr=False, compare=False)
    captured: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    empty_selection: bool = False

    @property
    def failed_nodes(self) -> tuple[NodeResult, ...]:
        """Nodes whose status fails the command (error, fail, runtime error)."""
        return tuple(node for node in self.nodes if node.failed)

    @property
    def counts(self) -> dict[str, int]:
        """How many nodes ended in each status, e.g. ``{"success": 5, "pass": 9}``."""
        return dict(sorted(Counter(node.status for node in self.nodes).items()))

    def summary(self, *, max_failed: int = 20) -> dict[str, Any]:
        """A compact JSON-serialisable summary, small enough for XCom.

        Failed nodes are listed (at most ``max_failed``) with their messages truncated; the
        full detail lives in ``run_results.json``.
        """
        failed = self.failed_nodes
        return {
            "command": self.command,
            "success": self.success,
            "elapsed": round(self.elapsed, 3),
            "nodes": len(self.nodes),
            "counts": self.counts,
            "failed_nodes": [
                {"unique_id": n.unique_id, "status": n.status, "message": _summary_message(n.message)}
                for n in failed[:max_failed]
            ],
            "failed_nodes_truncated": max(0, len(failed) - max_failed),
        }


def map_runner_result(
    command: str,
    runner_result: Any,
    *,
    elapsed: float,
    artifacts: Mapping[str, Path] | None = None,
    error_messages: Sequence[str] = (),
    redact: Callable[[str], str] | None = None,
) -> DbtResult:
    """Map a ``dbtRunnerResult`` faithfully onto a :class:`DbtResult`.

    * ``exception`` set (dbt could not run the command) → :class:`DbtInvocationError`, chained to
      dbt's exception so the traceback shows both.
    * otherwise a :class:`DbtResult` with ``success`` exactly as dbt reported it and every node
      result dbt returned; callers decide whether ``success=False`` fails their task.

    ``redact`` cleans every message taken from dbt (node messages, the exception's text), so a
    secret that reached a database error message does not reach the task's error either.
    """
    exception = getattr(runner_result, "exception", None)
    if exception is not None:
        raise DbtInvocationError(command, exception, redact=redact) from exception
    output = getattr(runner_result, "result", None)
    nodes = tuple(NodeResult.from_dbt(item) for item in _node_items(output))
    if redact is not None:
        nodes = redacted(nodes, redact)
    return DbtResult(
        command=command,
        success=bool(runner_result.success),
        nodes=nodes,
        elapsed=elapsed,
        artifacts=dict(artifacts or {}),
        error_messages=tuple(error_messages),
        output=output,
    )


def _node_items(output: Any) -> list[Any]:
    """The per-node results inside dbt's result object, whatever its type."""
    results = getattr(output, "results", None)
    if isinstance(results, list):
        return [item for item in results if getattr(item, "node", None) is not None]
    return []


def redacted(nodes: Sequence[NodeResult], redact: Callable[[str], str]) -> tuple[NodeResult, ...]:
    """``nodes`` with their messages redacted: they can quote SQL or a connection error."""
    return tuple(replace(n, message=redact(n.message)) if n.message else n for n in nodes)


def _rows(value: Any) -> int | None:
    """``rows_affected`` when the adapter reported a count (some report -1 for "unknown")."""
    return value if isinstance(value, int) and value >= 0 else None


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp of ``run_results.json`` (``None`` when absent or not a date-time)."""
    if not value:
        return None
    try:
        parsed = pendulum.parse(str(value), exact=True)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def _summary_message(message: str | None) -> str | None:
    """A failed node's message for the XCom summary: one line of at most 300 characters."""
    return None if message is None else shorten(one_line(message), 300)
