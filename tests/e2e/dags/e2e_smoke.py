"""The harness's own DAG: proves a deployment runs, logs, pushes XComs and defers for real.

``say_hello`` logs a marker line and returns a small dict (XCom through the Execution API);
``wait_in_triggerer`` defers until the file ``conf["release_file"]`` exists (the standard
provider's ``FileTrigger``), so a test holds the task in ``deferred`` exactly as long as it
needs, e.g. while it crashes or pauses the triggerer, then releases it; without that key it
waits ``conf["defer_seconds"]`` (default 5) with a ``DateTimeTrigger``. No dbt here: this DAG
tests the deployment, so a failure in it points at the harness, not at the provider.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.providers.standard.triggers.file import FileTrigger
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, Context, dag, task
from airflow.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

HELLO_MARKER = "e2e-smoke: hello from a LocalExecutor task"


class WaitInTriggererOperator(BaseOperator):
    """Defers until released (file or time, from the run's conf); returns when it was away."""

    def execute(self, context: Context) -> None:
        conf = context["dag_run"].conf or {}
        trigger: BaseTrigger
        if "release_file" in conf:
            log.info("deferring until %s exists", conf["release_file"])
            trigger = FileTrigger(filepath=str(conf["release_file"]), poke_interval=0.5)
        else:
            seconds = float(conf.get("defer_seconds", 5))
            log.info("deferring for %.1f s", seconds)
            trigger = DateTimeTrigger(moment=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds))
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"deferred_at": dt.datetime.now(dt.timezone.utc).isoformat()},
        )

    def execute_complete(self, context: Context, event: Any = None, deferred_at: str = "") -> dict[str, str]:
        log.info("resumed after the trigger fired (deferred at %s)", deferred_at)
        return {"deferred_at": deferred_at, "resumed_at": dt.datetime.now(dt.timezone.utc).isoformat()}


@dag(dag_id="e2e_smoke", schedule=None, catchup=False, tags=["e2e"])
def e2e_smoke() -> None:
    @task
    def say_hello(**context: Any) -> dict[str, Any]:
        log.info(HELLO_MARKER)
        return {"greeting": "hello", "conf": dict(context["dag_run"].conf or {})}

    say_hello() >> WaitInTriggererOperator(task_id="wait_in_triggerer")


e2e_smoke()
