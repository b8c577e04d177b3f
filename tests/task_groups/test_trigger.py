"""DbtNodeResultTrigger: every node of a DAG run waits on one shared poll of the producer, and a fresh
success record ends the task in the triggerer (``TaskSuccessEvent``) while everything else resumes it
on a worker.

The triggerer's supervisor channel is replaced by an in-memory producer that answers the real
Task SDK request messages (``GetTaskStates``, ``GetXCom``) on the event loop, so the test can count
them; the real channel is exercised on a deployment by ``tests/e2e/test_dbt_task_group.py`` and
``tests/e2e/test_celery.py``.
"""

from __future__ import annotations

import asyncio
import types
from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import GetTaskStates, GetXCom, TaskStatesResult, XComResult
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_dbt_provider.triggers.dbt_task_group import (
    DONE_KEY,
    DbtNodeResultTrigger,
    node_summary,
    record_key,
)

DAG = "dag"
RUN = "manual__1"
PRODUCER = "jaffle.dbt_build"
NODE = "model.jaffle_shop.orders"
PUBLISHED = "2026-01-01T10:00:00+00:00"


class Producer:
    """What the producer task has published, and how often the triggers asked."""

    def __init__(self) -> None:
        self.state = "running"
        self.xcoms: dict[str, Any] = {}
        self.state_reads = 0
        self.xcom_reads: list[str] = []
        self.listed_read: asyncio.Event | None = None  # set on each read of the index, if given
        self.on_record_read: Any = None  # awaited while a record is read, if given

    def publish(self, unique_id: str, status: str, published_at: str = PUBLISHED) -> dict[str, Any]:
        record = {"status": status, "message": None, "published_at": published_at, "nodes": {}}
        self.xcoms[record_key(unique_id)] = record
        self.xcoms[DONE_KEY] = [*self.xcoms.get(DONE_KEY, []), unique_id]
        return record


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Producer:
    fake = Producer()

    class Channel:
        """The triggerer's supervisor channel: answers on the loop, as ``TriggerCommsDecoder.asend``."""

        async def asend(self, request: Any) -> Any:
            if isinstance(request, GetTaskStates):
                assert request.task_ids == [PRODUCER]
                assert (request.dag_id, request.run_ids) == (DAG, [RUN])
                fake.state_reads += 1
                return TaskStatesResult(task_states={RUN: {PRODUCER: fake.state}})
            assert isinstance(request, GetXCom)
            assert (request.dag_id, request.run_id, request.task_id) == (DAG, RUN, PRODUCER)
            fake.xcom_reads.append(request.key)
            if request.key == DONE_KEY and fake.listed_read is not None:
                fake.listed_read.set()
            if request.key != DONE_KEY and fake.on_record_read is not None:
                await fake.on_record_read()
            return XComResult(key=request.key, value=fake.xcoms.get(request.key))

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Channel(), raising=False)
    return fake


def _trigger(unique_id: str = NODE, **kwargs: Any) -> DbtNodeResultTrigger:
    given: dict[str, Any] = {"dag_id": DAG, "run_id": RUN, "try_number": 1, "poll_interval": 0.05}
    return DbtNodeResultTrigger(producer_task_id=PRODUCER, unique_id=unique_id, **{**given, **kwargs})


async def _first_event(trigger: DbtNodeResultTrigger) -> TriggerEvent:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def test_many_waiting_nodes_share_one_poll(producer: Producer) -> None:
    nodes = [f"model.jaffle_shop.m{i}" for i in range(50)]

    async def scenario() -> list[TriggerEvent]:
        waits = [asyncio.ensure_future(_first_event(_trigger(uid))) for uid in nodes]
        await asyncio.sleep(0.2)  # a few rounds with nothing published
        for uid in nodes[:25]:
            producer.publish(uid, "success")
        await asyncio.sleep(0.2)
        producer.state = "failed"  # killed: the rest get producer_ended
        return await asyncio.gather(*waits)

    events = asyncio.run(scenario())
    assert all(isinstance(e, TaskSuccessEvent) for e in events[:25])
    assert [e.payload["kind"] for e in events[25:]] == ["producer_ended"] * 25
    rounds = producer.state_reads
    assert 3 <= rounds <= 20  # one state read per round, not one per waiting node
    assert producer.xcom_reads.count(DONE_KEY) == rounds
    records_read = sorted(k for k in producer.xcom_reads if k != DONE_KEY)
    assert records_read == sorted(record_key(u) for u in nodes[:25])  # each record read once
    assert DbtNodeResultTrigger(producer_task_id=PRODUCER, unique_id=NODE).serialize()[1] == {
        "producer_task_id": PRODUCER,
        "unique_id": NODE,
        "dag_id": None,
        "run_id": None,
        "poll_interval": 2.0,
        "try_number": None,
        "not_before": None,
    }


def test_a_fresh_success_record_ends_the_task_in_the_triggerer(producer: Producer) -> None:
    record = producer.publish(NODE, "success")
    event = asyncio.run(_first_event(_trigger()))
    assert isinstance(event, TaskSuccessEvent)
    # The same return_value the operator returns when it ends from the record on a worker.
    assert event.xcoms == {"return_value": node_summary(NODE, PRODUCER, record)}
    assert event.xcoms["return_value"]["source"] == PRODUCER


@pytest.mark.parametrize("status", ["error", "skipped"])
def test_error_and_skipped_records_resume_on_a_worker(producer: Producer, status: str) -> None:
    producer.publish(NODE, status)
    event = asyncio.run(_first_event(_trigger()))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["kind"] == "result"
    assert event.payload["record"]["status"] == status


def test_a_producer_that_ended_resumes_on_a_worker(producer: Producer) -> None:
    producer.state = "failed"
    event = asyncio.run(_first_event(_trigger()))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload == {"kind": "producer_ended", "producer_state": "failed", "unique_id": NODE}


def test_a_later_try_ends_only_from_a_record_published_since_it_started(producer: Producer) -> None:
    producer.publish(NODE, "success", published_at="2026-01-01T10:00:00+00:00")
    fresh = asyncio.run(_first_event(_trigger(try_number=2, not_before="2026-01-01T09:59:59+00:00")))
    assert isinstance(fresh, TaskSuccessEvent)

    async def scenario() -> TriggerEvent:
        wait = asyncio.ensure_future(
            _first_event(_trigger(try_number=2, not_before="2026-01-01T10:00:01+00:00"))
        )
        await asyncio.sleep(0.3)  # several rounds: an older try's record while the producer runs
        assert not wait.done()  # is neither trusted nor handed to the worker to build beside it
        producer.state = "success"  # the producer is done and never published this try's record
        return await asyncio.wait_for(wait, 10)

    stale = asyncio.run(scenario())
    assert not isinstance(stale, TaskSuccessEvent)  # the worker builds the node itself
    assert stale.payload["kind"] == "result"
    assert stale.payload["producer_state"] == "success"


def test_a_stale_record_is_waited_out_without_busy_polling(producer: Producer) -> None:
    """A whole-group clear: the new producer try has not cleared the old XComs yet. The node waits
    for this try's record, one regular round at a time (not an early round per answer)."""
    producer.publish(NODE, "success", published_at="2026-01-01T10:00:00+00:00")

    async def scenario() -> TriggerEvent:
        wait = asyncio.ensure_future(
            _first_event(_trigger(try_number=2, not_before="2026-01-01T10:00:01+00:00", poll_interval=0.2))
        )
        await asyncio.sleep(1.0)
        rounds = producer.state_reads
        producer.publish(NODE, "success", published_at="2026-01-01T10:00:02+00:00")  # this try's
        event = await asyncio.wait_for(wait, 10)
        assert rounds <= 8, rounds  # ~5 rounds of 0.2 s, not a 50 ms early round after each answer
        return event

    assert isinstance(asyncio.run(scenario()), TaskSuccessEvent)


def test_started_from_the_trigger_it_reads_the_task_instance_and_waits_for_the_producer(
    producer: Producer,
) -> None:
    """``start_from_trigger``: kwargs without dag_id/run_id/try_number; the producer not started yet
    (its XComs may be an older try's) is waited for instead of answered from."""
    producer.state = "scheduled"
    producer.publish(NODE, "success")  # an older producer try's record, not cleared yet

    def started(try_number: int) -> DbtNodeResultTrigger:
        trigger = DbtNodeResultTrigger(producer_task_id=PRODUCER, unique_id=NODE, poll_interval=0.05)
        trigger.task_instance = types.SimpleNamespace(  # type: ignore[assignment]
            dag_id=DAG, run_id=RUN, task_id="jaffle.orders", try_number=try_number
        )
        return trigger

    async def scenario() -> TriggerEvent:
        wait = asyncio.ensure_future(_first_event(started(1)))
        await asyncio.sleep(0.3)
        assert not wait.done()  # the producer has not started: nothing is trusted yet
        assert producer.state_reads >= 2
        assert DONE_KEY not in producer.xcom_reads
        producer.state = "running"
        return await asyncio.wait_for(wait, 10)

    assert isinstance(asyncio.run(scenario()), TaskSuccessEvent)

    # A later try started from the trigger began no later than the trigger: the older record is
    # waited out; one published since ends it.
    async def later_try() -> TriggerEvent:
        wait = asyncio.ensure_future(_first_event(started(2)))
        await asyncio.sleep(0.3)
        assert not wait.done()
        producer.publish(NODE, "success", published_at=datetime.now(timezone.utc).isoformat())
        return await asyncio.wait_for(wait, 10)

    assert isinstance(asyncio.run(later_try()), TaskSuccessEvent)


def test_a_node_the_last_poll_saw_listed_is_answered_without_waiting_a_round(producer: Producer) -> None:
    """Node tasks start level by level as their upstream tasks end, typically after dbt built them:
    such a waiter wakes the shared poll instead of waiting out ``poll_interval`` (30 s here)."""
    later = "model.jaffle_shop.customers"
    producer.publish(later, "success")

    async def scenario() -> tuple[bool, TriggerEvent]:
        producer.listed_read = asyncio.Event()
        first = asyncio.ensure_future(_first_event(_trigger(NODE, poll_interval=30)))
        await asyncio.wait_for(producer.listed_read.wait(), 10)  # the first poll saw `later` listed
        event = await asyncio.wait_for(_first_event(_trigger(later, poll_interval=30)), 10)
        still_waiting = not first.done()
        first.cancel()
        return still_waiting, event

    still_waiting, event = asyncio.run(scenario())
    assert isinstance(event, TaskSuccessEvent)
    assert still_waiting  # nothing published for NODE: it waits for a regular round
    assert producer.xcom_reads.count(DONE_KEY) == 2  # one early poll, not one per node


def test_a_waiter_registering_while_a_round_reads_is_not_told_the_producer_ended(producer: Producer) -> None:
    """The producer has ended and both records exist: a node task that starts while a round is
    reading records must get its record (ending in the triggerer), not ``producer_ended`` (which
    would resume it on a worker for nothing)."""
    later = "model.jaffle_shop.customers"
    producer.publish(NODE, "success")
    producer.publish(later, "success")
    producer.state = "success"
    joined: list[asyncio.Future[TriggerEvent]] = []

    async def start_another() -> None:
        if not joined:
            joined.append(asyncio.ensure_future(_first_event(_trigger(later, poll_interval=30))))
            for _ in range(5):  # let it register with the poller while this read is in flight
                await asyncio.sleep(0)

    producer.on_record_read = start_another

    async def scenario() -> list[TriggerEvent]:
        first = await asyncio.wait_for(_first_event(_trigger(NODE, poll_interval=30)), 10)
        return [first, await asyncio.wait_for(joined[0], 10)]

    events = asyncio.run(scenario())
    assert [type(e) for e in events] == [TaskSuccessEvent, TaskSuccessEvent], [e.payload for e in events]
