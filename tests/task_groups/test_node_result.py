"""DbtNodeResultOperator alone: how a ``single_build`` node task starts and resumes.

The end-to-end behaviour (records, retries, Asset events) runs under ``dag.test()`` in
``test_single_build.py`` and on a deployment in ``tests/e2e/test_dbt_task_group.py``; here are the
parts those runs cannot reach: the resume after a ``TaskSuccessEvent`` under ``airflow dags test``
(``dag.test()`` runs the producer before any node, so no node task defers there) and the
``start_from_trigger`` wiring per Airflow version.
"""

from __future__ import annotations

import importlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_dbt_provider import compat
from airflow_dbt_provider.operators import dbt_node
from airflow_dbt_provider.operators.dbt_node import DbtNodeResultOperator
from airflow_dbt_provider.triggers.dbt_task_group import DbtNodeResultTrigger, node_summary, record_key

PRODUCER = "jaffle.dbt_build"
NODE = "model.jaffle_shop.orders"


def _operator(project: Path) -> DbtNodeResultOperator:
    (project / "dbt_project.yml").touch()
    return DbtNodeResultOperator(
        task_id="orders",
        unique_id=NODE,
        node_select="orders",
        project_dir=str(project),
        producer_task_id=PRODUCER,
        group_alias="dbt:dag.jaffle",
        node_uri="dbt://duckdb/jaffle/main/orders",
    )


class _TI:
    """What ``_settle`` reads of the task instance: XComs of the producer, try and start."""

    def __init__(self, xcoms: dict[str, Any], try_number: int = 1) -> None:
        self.xcoms = xcoms
        self.dag_id, self.run_id, self.try_number = "dag", "manual__1", try_number
        self.start_date = datetime(2026, 1, 1, 10, tzinfo=timezone.utc)

    def xcom_pull(self, *, task_ids: str, key: str) -> Any:
        assert task_ids == PRODUCER
        return self.xcoms.get(key)


def test_resuming_after_a_task_success_event_under_dags_test_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dag.test()`` resumes ``execute_complete`` with the event's payload, ``"success"``: the task
    ends from the record it finds again, never deferring (or building) a second time."""
    op = _operator(tmp_path)
    record = {"status": "success", "published_at": "2026-01-01T10:00:05+00:00", "nodes": {NODE: "success"}}
    monkeypatch.setattr(DbtNodeResultOperator, "_producer_state", lambda self, ti: "running")
    monkeypatch.setattr(DbtNodeResultOperator, "defer", _forbidden("defer again"))
    monkeypatch.setattr(DbtNodeResultOperator, "_build", _forbidden("build the node"))
    for try_number in (1, 2):
        ti = _TI({record_key(NODE): record}, try_number)
        assert op.execute_complete({"ti": ti}, event="success") == node_summary(NODE, PRODUCER, record)


def _forbidden(what: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the task tried to {what}")

    return fail


def test_start_from_trigger_only_where_the_scheduler_supports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = _operator(tmp_path)
    assert op.start_from_trigger is compat.HAS_START_FROM_TRIGGER
    monkeypatch.setattr(dbt_node, "HAS_START_FROM_TRIGGER", True)
    started = _operator(tmp_path)
    args = started.start_trigger_args
    assert started.start_from_trigger is True
    assert args is not None
    assert (args.next_method, args.next_kwargs, args.timeout) == ("execute_complete", None, None)
    # JSON primitives only; dag_id/run_id/try_number come from the triggerer's task instance.
    assert json.loads(json.dumps(args.trigger_kwargs)) == {
        "producer_task_id": PRODUCER,
        "unique_id": NODE,
        "poll_interval": 2.0,
    }
    module, name = args.trigger_cls.rsplit(".", 1)
    trigger = getattr(importlib.import_module(module), name)(**args.trigger_kwargs)
    assert isinstance(trigger, DbtNodeResultTrigger)
    monkeypatch.setattr(dbt_node, "HAS_START_FROM_TRIGGER", False)
    on_worker = _operator(tmp_path)
    assert on_worker.start_from_trigger is False
    assert on_worker.start_trigger_args is None


class _Deferred(Exception):
    """Raised by the test's ``defer``: carries the trigger the task deferred to."""

    def __init__(self, trigger: DbtNodeResultTrigger) -> None:
        super().__init__("deferred")
        self.trigger = trigger


def test_an_older_producer_trys_record_is_waited_out_not_built_beside_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later try (the whole group cleared) finds the previous build's record while the producer
    is queued or running again: it defers for this try's record instead of building the node on
    its own beside the producer's build; once the producer has ended, it builds it."""
    op = _operator(tmp_path)
    old = {"status": "success", "published_at": "2026-01-01T09:00:00+00:00", "nodes": {NODE: "success"}}
    ti = _TI({record_key(NODE): old}, try_number=2)

    def defer(self: Any, *, trigger: DbtNodeResultTrigger, method_name: str) -> None:
        raise _Deferred(trigger)

    monkeypatch.setattr(DbtNodeResultOperator, "defer", defer)
    monkeypatch.setattr(DbtNodeResultOperator, "_build", _forbidden("build the node"))
    for state in ("queued", "running", "up_for_retry"):
        monkeypatch.setattr(DbtNodeResultOperator, "_producer_state", lambda self, ti, s=state: s)
        with pytest.raises(_Deferred) as deferred:
            op.execute({"ti": ti})
        assert deferred.value.trigger.not_before == ti.start_date.isoformat()
    monkeypatch.setattr(DbtNodeResultOperator, "_producer_state", lambda self, ti: "success")
    monkeypatch.setattr(DbtNodeResultOperator, "_build", lambda self, context: {"built": True})
    assert op.execute({"ti": ti}) == {"built": True}
