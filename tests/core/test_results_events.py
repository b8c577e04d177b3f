"""The outcome mapping and the event logger, on dbt's own result and event types."""

from __future__ import annotations

import logging

import pytest
from dbt.cli.main import dbtRunnerResult
from dbt.exceptions import DbtProjectError
from dbt_common.events.base_types import EventLevel, msg_from_base_event
from dbt_common.events.types import Note
from support.dbt_projects import recording

from airflow_dbt_provider.core import DbtCommandFailedError, DbtInvocationError, DbtResult, NodeResult
from airflow_dbt_provider.core.events import DbtEventLogger
from airflow_dbt_provider.core.results import map_runner_result


def test_success_maps_to_a_successful_result() -> None:
    result = map_runner_result("debug", dbtRunnerResult(success=True, result=True), elapsed=1.5)
    assert result.success
    assert result.output is True
    assert result.nodes == ()
    assert result.summary() == {
        "command": "debug",
        "success": True,
        "elapsed": 1.5,
        "nodes": 0,
        "counts": {},
        "failed_nodes": [],
        "failed_nodes_truncated": 0,
    }


def test_handled_failure_without_nodes_keeps_dbts_error_lines() -> None:
    result = map_runner_result(
        "deps", dbtRunnerResult(success=False), elapsed=0.1, error_messages=["Package not found: x"]
    )
    assert not result.success
    assert str(DbtCommandFailedError(result)) == "dbt deps failed: Package not found: x"


def test_unhandled_exception_is_chained() -> None:
    cause = DbtProjectError("Runtime Error\n  Could not find profile named 'nope'")
    with pytest.raises(DbtInvocationError) as caught:
        map_runner_result("run", dbtRunnerResult(success=False, exception=cause), elapsed=0.0)
    assert caught.value.__cause__ is cause
    assert caught.value.command == "run"
    assert "Could not find profile named 'nope'" in str(caught.value)


def test_failed_node_list_is_truncated_sensibly() -> None:
    nodes = tuple(
        NodeResult(unique_id=f"test.p.t{i}", status="fail", message="Got 1 result " + "x" * 1000)
        for i in range(15)
    )
    result = DbtResult(command="test", success=False, nodes=(NodeResult("model.p.ok", "success"), *nodes))
    message = str(DbtCommandFailedError(result))
    lines = message.splitlines()
    assert lines[0] == "dbt test failed: 15 node(s) failed or errored:"
    assert len(lines) == 1 + DbtCommandFailedError.MAX_LISTED + 1
    assert lines[-1] == "  ... and 5 more (see run_results.json)"
    assert all(len(line) < DbtCommandFailedError.MAX_MESSAGE + 40 for line in lines)
    assert result.summary(max_failed=3)["failed_nodes_truncated"] == 12


def _event(text: str, level: EventLevel) -> object:
    return msg_from_base_event(Note(msg=text), level=level)


def test_events_become_clean_log_lines_at_the_right_level() -> None:
    logger = logging.getLogger("tests.events")
    events = DbtEventLogger(logger, secrets=["s3cr3t-value"])
    with recording(logger) as log:
        events(_event("\x1b[32mOK\x1b[0m created view model main.x", EventLevel.INFO))
        events(_event("first line\nsecond line with s3cr3t-value\n", EventLevel.ERROR))
        events(_event("a warning", EventLevel.WARN))
        events(_event("only for debugging", EventLevel.DEBUG))
    assert [(r.levelno, r.getMessage()) for r in log.records] == [
        (logging.INFO, "OK created view model main.x"),
        (logging.ERROR, "first line"),
        (logging.ERROR, "second line with ***"),
        (logging.WARNING, "a warning"),
    ]
    assert events.errors == ["first line\nsecond line with ***"]


def test_secrets_are_redacted_from_errors() -> None:
    events = DbtEventLogger(logging.getLogger("tests.events"), secrets=["hunter2-password"])
    cause = DbtProjectError("could not connect as admin:hunter2-password@db")
    with pytest.raises(DbtInvocationError) as caught:
        map_runner_result(
            "run", dbtRunnerResult(success=False, exception=cause), elapsed=0.0, redact=events.clean
        )
    assert "hunter2-password" not in str(caught.value)
    assert "admin:***@db" in str(caught.value)
