"""Stand-ins for the ``tests_common`` helpers the official provider's system-test DAGs import.

``tests/operators_cloud/official_example/example_dbt_cloud.py`` is the official provider's example
DAG with only its imports changed; these three names replace apache/airflow's test harness
(``tests_common.test_utils.system_tests`` and ``.watcher``) with what they mean here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowException


def get_test_env_id() -> str:
    """The system tests' environment id (upstream: ``SYSTEM_TESTS_ENV_ID``); one fixed value here."""
    return "emulator"


def watcher() -> Any:
    """A task that fails the DAG run when any upstream task failed (upstream: the same contract).

    Wired after every task with ``list(dag.tasks) >> watcher()``; when all succeed it is skipped.
    """

    @task(task_id="watcher", trigger_rule="one_failed", retries=0)
    def watch() -> None:
        raise AirflowException("Failing task because one or more upstream tasks failed.")

    return watch()


def get_test_run(dag: DAG) -> Callable[[], Any]:
    """A callable running the DAG once with ``dag.test()``; returns what the run left (DagResult)."""

    def test_run() -> Any:
        from support.cloud_dags import run_dag

        return run_dag(dag)

    return test_run
