"""airflow_dbt_provider/compat.py: the Airflow version facts and what they switch."""

from __future__ import annotations

import logging

import airflow
import pytest
from packaging.version import Version

from airflow_dbt_provider import compat
from airflow_dbt_provider.get_provider_info import DBT_CLOUD_CONNECTION, DBT_TARGET_CONNECTION


def test_version_facts_follow_the_running_airflow() -> None:
    release = Version(airflow.__version__).release[:2]
    assert (release >= (3, 3)) == compat.HAS_TASK_STATE_STORE
    assert (release >= (3, 3)) == compat.HAS_TRIGGER_ON_KILL
    assert (release >= (3, 2)) == compat.HAS_DECLARATIVE_CONN_FIELDS
    assert (release >= (3, 3)) == compat.HAS_START_FROM_TRIGGER
    from airflow.triggers.base import BaseTrigger

    # The fact the on_kill notice rests on: the triggerer only calls on_kill where BaseTrigger has it.
    assert hasattr(BaseTrigger, "on_kill") == compat.HAS_TRIGGER_ON_KILL


def test_start_from_trigger_is_where_the_scheduler_defers_tasks_itself() -> None:
    """The fact HAS_START_FROM_TRIGGER rests on: ``DagRun.schedule_tis`` calls ``defer_task`` for a
    task with ``start_from_trigger`` (Airflow 3.3); on 3.1/3.2 that call is commented out."""
    import inspect

    from airflow.models.dagrun import DagRun

    source = inspect.getsource(DagRun.schedule_tis)
    live = [
        line for line in source.splitlines() if "defer_task(" in line and not line.strip().startswith("#")
    ]
    assert bool(live) == compat.HAS_START_FROM_TRIGGER


def test_the_configuration_is_airflows() -> None:
    assert compat.conf.get("core", "dags_folder")


@pytest.mark.parametrize("connection", [DBT_CLOUD_CONNECTION, DBT_TARGET_CONNECTION])
def test_ui_field_behaviour_is_the_provider_infos_in_hook_method_shape(connection: dict) -> None:
    behaviour = compat.ui_field_behaviour(connection)
    declared = connection["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared.get("hidden-fields", [])
    assert behaviour["relabeling"] == declared["relabeling"]
    assert behaviour["placeholders"] == declared["placeholders"]


def test_the_no_on_kill_notice_is_said_only_where_it_applies(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("tests.compat")
    caplog.set_level(logging.WARNING, logger="tests.compat")
    monkeypatch.setattr(compat, "HAS_TRIGGER_ON_KILL", True)
    compat.warn_no_trigger_on_kill(log)
    assert not caplog.records
    monkeypatch.setattr(compat, "HAS_TRIGGER_ON_KILL", False)
    compat.warn_no_trigger_on_kill(log)
    (record,) = caplog.records
    assert "does not cancel the dbt Cloud run" in record.getMessage()
    assert "cancelled at the timeout" in record.getMessage()
