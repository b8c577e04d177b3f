"""The task state store (AIP-103, Airflow 3.3) as the operators use it: optional and never fatal.

Both the dbt Core and the dbt Cloud operators keep a little state there for the next try (what to
``dbt retry``; which dbt Cloud run a try started). One policy for all of them:

* **Absent** (Airflow < 3.3, or not in the task's context): one line in the task log saying what
  the task does without it; the task goes on.
* **Failing** (the API server refuses or is down): a warning naming what could not be read or
  kept and what that costs; the task goes on. A store outage never fails a task whose dbt run
  succeeded: the state only makes a *later* try cheaper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_dbt_provider.compat import HAS_TASK_STATE_STORE
from airflow_dbt_provider.logs import Logger


def has_task_state_store() -> bool:
    """Whether this Airflow has the task state store (Airflow 3.3); the fact lives in compat."""
    return HAS_TASK_STATE_STORE


class TaskStateStore:
    """This task instance's task state store entries (map index included), failure-tolerant.

    :param context: The task's context.
    :param log: The task's logger.
    :param without: What the task does when a value cannot be read or kept, as the end of a
        sentence (``"every try runs the full command"``); it is said once, in the task log.
    :param warn_if_absent: Say it as a warning when this Airflow has no store (the user asked for
        something only the store provides), else as an info line.
    :param fallback: A store with the same ``get``/``set``/``delete`` used when this Airflow has
        none (e.g. :class:`~airflow_dbt_provider.core.retry_state.ArtifactsDirStore`); the caller
        says in the task log where it keeps the state then.
    """

    def __init__(
        self,
        context: Mapping[str, Any],
        log: Logger,
        *,
        without: str,
        warn_if_absent: bool = False,
        fallback: Any = None,
    ) -> None:
        self._log = log
        self._without = without
        available = has_task_state_store()
        self._store = context.get("task_state_store") if available else fallback
        if not available and fallback is None:
            say = log.warning if warn_if_absent else log.info
            say("this Airflow has no task state store (Airflow 3.3+): %s", without)
        elif self._store is None:
            log.warning("task_state_store is not in the context: %s", without)

    @property
    def available(self) -> bool:
        return self._store is not None

    def get(self, key: str) -> Any:
        """The stored value, or ``None`` when there is none or the store could not be read."""
        if self._store is None:
            return None
        try:
            return self._store.get(key)
        except Exception as exc:
            self._log.warning("could not read %r from the task state store (%s): %s", key, exc, self._without)
            return None

    def set(self, key: str, value: Any) -> bool:
        """Keep ``value`` for the next try; ``False`` (after a warning) when the store refused."""
        if self._store is None:
            return False
        try:
            self._store.set(key, value)
        except Exception as exc:
            self._log.warning(
                "could not keep %r in the task state store (%s); the task goes on, but on a retry %s",
                key,
                exc,
                self._without,
            )
            return False
        return True

    def delete(self, key: str) -> None:
        """Forget ``key``; a failure is a warning (a clear discards the entries anyway)."""
        if self._store is None:
            return
        try:
            self._store.delete(key)
        except Exception as exc:
            self._log.warning(
                "could not delete %r from the task state store (%s); the task goes on, but a later "
                "try of this task instance may still read it",
                key,
                exc,
            )
