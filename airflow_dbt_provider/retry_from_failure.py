"""``retry_from_failure`` for dbt Core tasks: a retry runs ``dbt retry`` on what the last try left.

A failed try keeps the part of its ``run_results.json`` that ``dbt retry`` reads
(:mod:`airflow_dbt_provider.core.retry_state`) in the task state store; the next try writes it back
into a ``--state`` directory and runs ``dbt retry`` instead of the full command. A try that
succeeds forgets it. Without a store (Airflow < 3.3) the state lives in ``artifacts_dir`` when it
is set (a local directory or an object-storage URL, which every worker reaches); with neither,
or when the store fails, every try runs the full command
(:mod:`airflow_dbt_provider.task_state` says so in the task log).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_dbt_provider.compat import AIRFLOW_VERSION
from airflow_dbt_provider.core import DbtResult
from airflow_dbt_provider.core.retry_state import (
    STATE_KEY,
    ArtifactsDirStore,
    retry_state,
    usable,
    write_run_results,
)
from airflow_dbt_provider.logs import Logger
from airflow_dbt_provider.object_storage import is_url
from airflow_dbt_provider.object_storage.artifacts import ObjectStorageStateFiles
from airflow_dbt_provider.object_storage.locations import shown
from airflow_dbt_provider.task_state import TaskStateStore, has_task_state_store

#: What a try does when the task state store is absent or fails.
WITHOUT_STORE = (
    "retry_from_failure=True has no effect: every try runs the full command (without a task state "
    "store, set artifacts_dir to a directory every try reaches)"
)
#: Node ids listed in the task log when a retry starts.
LISTED_NODES = 20


class RetryFromFailure:
    """The previous try's failures for this try, and this try's for the next one."""

    def __init__(
        self, context: Mapping[str, Any], log: Logger, artifacts_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self._log = log
        fallback = None
        #: Where a failed try's state goes, as the task log names it.
        self._kept_in = "the task state store"
        if artifacts_dir and not has_task_state_store():
            ti = context["ti"]
            owner = json.dumps([ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1)])
            files = ObjectStorageStateFiles(str(artifacts_dir)) if is_url(artifacts_dir) else artifacts_dir
            fallback = ArtifactsDirStore(files, owner)
            self._kept_in = (
                f"artifacts_dir {shown(str(artifacts_dir)) if is_url(artifacts_dir) else artifacts_dir}"
            )
            log.info(
                "Airflow %s has no task state store (3.3 adds it): retry_from_failure keeps its "
                "state in %s, which every try of this task must reach",
                AIRFLOW_VERSION,
                self._kept_in,
            )
        self._store = TaskStateStore(
            context, log, without=WITHOUT_STORE, warn_if_absent=True, fallback=fallback
        )
        self._try_number = int(getattr(context["ti"], "try_number", 1) or 1)

    @property
    def available(self) -> bool:
        return self._store.available

    def plan(
        self, state_dir: Path, args: list[str], params: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any]]:
        """``dbt retry --state state_dir`` when a previous try failed, else ``args`` and ``params``."""
        state = self._store.get(STATE_KEY) if self._try_number > 1 else None
        if not usable(state):
            return args, params
        write_run_results(state, state_dir)
        nodes = state["retry_nodes"]
        self._log.info(
            "Try %d: dbt retry runs only the %d node(s) that failed or were skipped before: %s",
            self._try_number,
            len(nodes),
            ", ".join(nodes[:LISTED_NODES]) + (" ..." if len(nodes) > LISTED_NODES else ""),
        )
        # dbt retry repeats the previous invocation's own arguments (selection, vars, flags).
        return ["retry", "--state", str(state_dir)], {}

    def remember(self, result: DbtResult) -> None:
        """Keep this try's failures for the next try; forget them when it succeeded."""
        raw = result.captured.get("run_results.json")
        state = retry_state(raw) if raw is not None and not result.success else None
        if state is None:
            self._store.delete(STATE_KEY)
        elif self._store.set(STATE_KEY, state):
            self._log.info(
                "Kept %d failed/skipped node(s) in %s for a retry", len(state["retry_nodes"]), self._kept_in
            )
