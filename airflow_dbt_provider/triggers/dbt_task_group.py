"""The wait of a ``single_build`` node task: its node's record from the producer, or the producer's end.

Every deferred node task of one DAG run waits on the same producer, so one poller per
``(dag_id, run_id, producer)`` per triggerer process reads, every ``poll_interval`` seconds, the
producer's state and its index of finished nodes (two small reads however many nodes wait), and
fetches a node's record only once it is listed. Each :class:`DbtNodeResultTrigger` just registers
with that poller and awaits its answer, so a 1,000-node group costs the triggerer one poll, not
1,000. Reads are Task SDK requests sent on the triggerer's own loop
(:mod:`airflow_dbt_provider.trigger_comms`), so the event loop never blocks and the
supervisor channel is never used from another thread (which kills Airflow 3.1's trigger runner).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_dbt_provider.trigger_comms import fetch_task_states, fetch_xcom

#: XCom key of the producer's list of nodes with a published record.
DONE_KEY = "dbt_build:done"
#: XCom key of the marker the producer pushes when its build returned (not killed).
FINISHED_KEY = "dbt_build:finished"
#: States in which the producer will publish nothing more.
PRODUCER_ENDED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


def record_key(unique_id: str) -> str:
    """XCom key of one node's record."""
    return f"dbt_node:{unique_id}"


class _Poller:
    """One polling loop for every node waiting on one producer in this triggerer."""

    def __init__(self, dag_id: str, run_id: str, producer: str, interval: float) -> None:
        self.dag_id, self.run_id, self.producer, self.interval = dag_id, run_id, producer, interval
        self.waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.task: asyncio.Task[None] | None = None

    def wait(self, unique_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(unique_id, []).append(future)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())
        return future

    def forget(self, unique_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        futures = self.waiters.get(unique_id, [])
        if future in futures:
            futures.remove(future)
        if not futures:
            self.waiters.pop(unique_id, None)

    async def _loop(self) -> None:
        while self.waiters:
            try:
                await self._poll_once()
            except Exception as exc:  # a failed read is retried next round, never fatal
                _log().warning("dbt node poll of %s/%s failed, retrying: %s", self.dag_id, self.run_id, exc)
            if self.waiters:
                await asyncio.sleep(self.interval)
        _POLLERS.pop((self.dag_id, self.run_id, self.producer), None)

    async def _poll_once(self) -> None:
        states = await fetch_task_states(self.dag_id, self.run_id, self.producer)
        state = producer_state(states, self.run_id, self.producer)
        done = set(await self._xcom(DONE_KEY) or ())
        for unique_id in [u for u in self.waiters if u in done]:
            record = await self._xcom(record_key(unique_id))
            if record is not None:
                self._answer(unique_id, {"kind": "result", "record": record})
        if state in PRODUCER_ENDED:
            for unique_id in list(self.waiters):
                self._answer(unique_id, {"kind": "producer_ended", "producer_state": state})

    def _answer(self, unique_id: str, event: dict[str, Any]) -> None:
        for future in self.waiters.pop(unique_id, []):
            if not future.done():
                future.set_result({**event, "unique_id": unique_id})

    async def _xcom(self, key: str) -> Any:
        return await fetch_xcom(key, self.dag_id, self.run_id, self.producer)


def producer_state(states: Any, run_id: str, producer: str) -> str | None:
    """The producer's state from ``get_task_states`` (``{run_id: {task_id: state}}``)."""
    per_run = states.get(run_id, states) if isinstance(states, dict) else {}
    state = per_run.get(producer) if isinstance(per_run, dict) else None
    return None if state is None else str(getattr(state, "value", state))


_POLLERS: dict[tuple[str, str, str], _Poller] = {}


def _log() -> Any:
    import logging

    return logging.getLogger(__name__)


class DbtNodeResultTrigger(BaseTrigger):
    """Fires ``{"kind": "result", "record": ...}`` or ``{"kind": "producer_ended", ...}``.

    :param dag_id: the DAG of the run.
    :param run_id: the DAG run.
    :param producer_task_id: the group's ``dbt_build`` task.
    :param unique_id: the node whose record the task waits for.
    :param poll_interval: seconds between the shared polls.
    """

    def __init__(
        self, dag_id: str, run_id: str, producer_task_id: str, unique_id: str, poll_interval: float = 2.0
    ) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.run_id = run_id
        self.producer_task_id = producer_task_id
        self.unique_id = unique_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """JSON primitives only."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "producer_task_id": self.producer_task_id,
                "unique_id": self.unique_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the shared poller for this node's answer."""
        key = (self.dag_id, self.run_id, self.producer_task_id)
        poller = _POLLERS.get(key)
        if poller is None:
            poller = _POLLERS[key] = _Poller(
                self.dag_id, self.run_id, self.producer_task_id, self.poll_interval
            )
        future = poller.wait(self.unique_id)
        try:
            event = await future
        finally:
            poller.forget(self.unique_id, future)
        yield TriggerEvent(event)
