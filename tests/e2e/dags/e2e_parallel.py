"""Two tasks that can only succeed together: proof that the deployment runs tasks in parallel.

Each task drops a marker file into ``conf["barrier_dir"]`` and waits (up to
``conf["timeout"]`` s) until every peer's marker is there. With one task slot the first task
times out waiting for a peer that cannot start, so success means more than one slot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

PEERS = ("left", "right")


def _barrier(name: str, conf: dict[str, Any]) -> float:
    directory = Path(conf["barrier_dir"])
    (directory / name).touch()
    deadline = time.monotonic() + float(conf.get("timeout", 90))
    while not all((directory / peer).exists() for peer in PEERS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: peers never ran alongside me; is parallelism 1?")
        time.sleep(0.2)
    return time.time()


@dag(dag_id="e2e_parallel", schedule=None, catchup=False, tags=["e2e"])
def e2e_parallel() -> None:
    @task
    def left(**context: Any) -> float:
        return _barrier("left", context["dag_run"].conf)

    @task
    def right(**context: Any) -> float:
        return _barrier("right", context["dag_run"].conf)

    left()
    right()


e2e_parallel()
