"""The wait of a ``single_build`` node task: its node's record from the producer, or the producer's end.

Every deferred node task of one DAG run waits on the same producer, so one poller per
``(dag_id, run_id, producer)`` per triggerer process reads, every ``poll_interval`` seconds, the
producer's state and its index of finished nodes (two small reads however many nodes wait), and
fetches a node's record only once it is listed. Each :class:`DbtNodeResultTrigger` just registers
with that poller and awaits its answer, so a 1,000-node group costs the triggerer one poll, not
1,000. Reads are Task SDK requests sent on the triggerer's own loop
(:mod:`airflow_dbt_provider.trigger_comms`), so the event loop never blocks and the
supervisor channel is never used from another thread (which kills Airflow 3.1's trigger runner).

A fresh **success** record ends the task in the triggerer (``TaskSuccessEvent``, with the same
``return_value`` the operator returns): no worker slot for it. Everything else — an error or skipped
record, a stale one, the producer's end — resumes the task on a worker, which decides as it does at
its start (dbt's message in the task log, retries honoured).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_dbt_provider.trigger_comms import fetch_task_states, fetch_xcom

#: XCom key of the producer's list of nodes with a published record.
DONE_KEY = "dbt_build:done"
#: XCom key of the marker the producer pushes when its build returned (not killed).
FINISHED_KEY = "dbt_build:finished"
#: States in which the producer will publish nothing more.
PRODUCER_ENDED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
#: Producer states before it has started its try: its XComs may still be an older try's.
PRODUCER_NOT_STARTED = frozenset({"none", "scheduled", "removed"})


def record_key(unique_id: str) -> str:
    """XCom key of one node's record."""
    return f"dbt_node:{unique_id}"


def node_summary(unique_id: str, producer_task_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ``return_value`` of a node task that ended from the producer's record."""
    return {"unique_id": unique_id, "source": producer_task_id, **record}


def is_fresh(record: Mapping[str, Any], try_number: int, since: datetime | str | None) -> bool:
    """Whether ``record`` is this try's: any record for a first try; for a later try only one the
    producer published at or after ``since`` (the try's start; ``None``: unknown, so not fresh)."""
    if try_number <= 1:
        return True
    published = record.get("published_at")
    if since is None or not published:
        return False
    start = datetime.fromisoformat(since) if isinstance(since, str) else since
    return datetime.fromisoformat(published) >= start


#: Seconds a poll waits after a wake-up, so a burst of new waiters shares one poll.
_COALESCE_S = 0.05


class _Poller:
    """One polling loop for every node waiting on one producer in this triggerer.

    A waiter whose node the last poll already saw listed (its upstream tasks ended after dbt built
    it: the usual case once the build is ahead of the graph) wakes the loop for one early poll,
    instead of waiting up to ``interval``: the scheduler starts node tasks level by level, so
    each level's wait would otherwise add to the run's wall time.
    """

    def __init__(self, dag_id: str, run_id: str, producer: str, interval: float) -> None:
        self.dag_id, self.run_id, self.producer, self.interval = dag_id, run_id, producer, interval
        self.waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.listed: frozenset[str] = frozenset()
        self.wake = asyncio.Event()

    def wait(self, unique_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(unique_id, []).append(future)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())
        elif unique_id in self.listed:
            self.wake.set()
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
                await self._sleep()
        _POLLERS.pop((self.dag_id, self.run_id, self.producer), None)

    async def _sleep(self) -> None:
        """Until the next round: ``interval``, or shortly after a waiter woke the loop."""
        try:
            await asyncio.wait_for(self.wake.wait(), self.interval)
        except asyncio.TimeoutError:  # (not the builtin TimeoutError on Python 3.10)
            return
        finally:
            self.wake.clear()
        await asyncio.sleep(_COALESCE_S)

    async def _poll_once(self) -> None:
        states = await fetch_task_states(self.dag_id, self.run_id, self.producer)
        state = producer_state(states, self.run_id, self.producer) or "none"
        if state in PRODUCER_NOT_STARTED - PRODUCER_ENDED:
            return  # its XComs may be an older try's until it starts (a task started from the trigger)
        # Only the waiters registered before the index was read are answered this round: one that
        # registers while the reads are in flight may be listed in an index read after it (and
        # would be told "producer ended" although its record exists); it gets the next round.
        waiting = list(self.waiters)
        done = set(await self._xcom(DONE_KEY) or ())
        self.listed = frozenset(done)
        for unique_id in [u for u in waiting if u in done]:
            record = await self._xcom(record_key(unique_id))
            if record is not None:
                self._answer(unique_id, {"kind": "result", "record": record, "producer_state": state})
        if state in PRODUCER_ENDED:
            for unique_id in [u for u in waiting if u in self.waiters]:
                self._answer(unique_id, {"kind": "producer_ended", "producer_state": state})
        if any(u in done and u not in waiting for u in self.waiters):
            self.wake.set()  # listed waiters that registered during the reads: one early round

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
    """Ends a ``single_build`` node task from the producer's success record, or resumes it on a worker.

    Fires ``TaskSuccessEvent`` for a fresh success record (a first try trusts any record; a later
    try one published at or after ``not_before``), else ``TriggerEvent({"kind": "result",
    "record": ...})`` or ``TriggerEvent({"kind": "producer_ended", ...})``.

    Started by the worker (Airflow 3.1/3.2, ``airflow dags test``, and a resumed check), it is given
    ``dag_id``, ``run_id`` and ``try_number``; started by the scheduler (``start_from_trigger`` on
    Airflow >= 3.3) it reads them from ``self.task_instance``, which the triggerer sets.

    :param producer_task_id: the group's ``dbt_build`` task.
    :param unique_id: the node whose record the task waits for.
    :param dag_id: the DAG of the run (default: the task instance's).
    :param run_id: the DAG run (default: the task instance's).
    :param poll_interval: seconds between the shared polls.
    :param try_number: the waiting try (default: the task instance's).
    :param not_before: ISO start of a later try: only a record published since then ends it here.
    """

    def __init__(
        self,
        producer_task_id: str,
        unique_id: str,
        dag_id: str | None = None,
        run_id: str | None = None,
        poll_interval: float = 2.0,
        try_number: int | None = None,
        not_before: str | None = None,
    ) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.run_id = run_id
        self.producer_task_id = producer_task_id
        self.unique_id = unique_id
        self.poll_interval = poll_interval
        self.try_number = try_number
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """JSON primitives only."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "producer_task_id": self.producer_task_id,
                "unique_id": self.unique_id,
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "poll_interval": self.poll_interval,
                "try_number": self.try_number,
                "not_before": self.not_before,
            },
        )

    def _task_instance_field(self, name: str) -> Any:
        ti = getattr(self, "task_instance", None)
        value = getattr(ti, name, None)
        if value is None:
            raise ValueError(
                f"DbtNodeResultTrigger needs {name}: pass it, or run it for a task instance "
                "(start_from_trigger sets one)"
            )
        return value

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait on the shared poller for this node's answer."""
        dag_id = self.dag_id or str(self._task_instance_field("dag_id"))
        run_id = self.run_id or str(self._task_instance_field("run_id"))
        try_number = self.try_number
        if try_number is None:
            try_number = int(self._task_instance_field("try_number"))
        key = (dag_id, run_id, self.producer_task_id)
        not_before = self.not_before
        if try_number > 1 and not_before is None:
            # A later try started from the trigger: it began no later than now.
            not_before = datetime.now(timezone.utc).isoformat()
        while True:
            poller = _POLLERS.get(key)
            if poller is None:  # (the last one ended when its last waiter was answered)
                poller = _POLLERS[key] = _Poller(dag_id, run_id, self.producer_task_id, self.poll_interval)
            future = poller.wait(self.unique_id)
            try:
                event = await future
            finally:
                poller.forget(self.unique_id, future)
            record = event.get("record")
            stale = isinstance(record, dict) and not is_fresh(record, try_number, not_before)
            if not (stale and event.get("producer_state") not in PRODUCER_ENDED):
                break
            # An older producer try's record while the producer may still publish this one's (the
            # whole group was cleared; a new try's start clears the old XComs): wait for it, asking
            # again once a round, rather than have the worker build the node beside the build.
            await asyncio.sleep(self.poll_interval)
        if isinstance(record, dict) and record.get("status") == "success" and not stale:
            summary = node_summary(self.unique_id, self.producer_task_id, record)
            self.log.info(
                "%s: built by %s (dbt: %s); ending the task in the triggerer",
                self.unique_id,
                self.producer_task_id,
                record.get("nodes"),
            )
            yield TaskSuccessEvent(xcoms={"return_value": summary})
            return
        yield TriggerEvent(event)
