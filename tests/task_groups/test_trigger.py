"""DbtNodeResultTrigger: every node of a DAG run waits on one shared poll of the producer.

The triggerer's supervisor channel is replaced by an in-memory producer that answers the real
Task SDK request messages (``GetTaskStates``, ``GetXCom``) on the event loop, so the test can count
them; the real channel is exercised on a deployment by ``tests/e2e/test_dbt_task_group.py`` and
``tests/e2e/test_celery.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import GetTaskStates, GetXCom, TaskStatesResult, XComResult

from airflow_dbt_provider.triggers.dbt_task_group import DONE_KEY, DbtNodeResultTrigger, record_key

RUN = "manual__1"
PRODUCER = "jaffle.dbt_build"


class Producer:
    """What the producer task has published, and how often the triggers asked."""

    def __init__(self) -> None:
        self.state = "running"
        self.xcoms: dict[str, Any] = {}
        self.state_reads = 0
        self.xcom_reads: list[str] = []

    def publish(self, unique_id: str, status: str) -> None:
        self.xcoms[record_key(unique_id)] = {"status": status}
        self.xcoms[DONE_KEY] = [*self.xcoms.get(DONE_KEY, []), unique_id]


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> Producer:
    fake = Producer()

    class Channel:
        """The triggerer's supervisor channel: answers on the loop, as ``TriggerCommsDecoder.asend``."""

        async def asend(self, request: Any) -> Any:
            if isinstance(request, GetTaskStates):
                assert request.task_ids == [PRODUCER]
                fake.state_reads += 1
                return TaskStatesResult(task_states={RUN: {PRODUCER: fake.state}})
            assert isinstance(request, GetXCom)
            assert request.task_id == PRODUCER
            fake.xcom_reads.append(request.key)
            return XComResult(key=request.key, value=fake.xcoms.get(request.key))

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Channel(), raising=False)
    return fake


def test_many_waiting_nodes_share_one_poll(producer: Producer) -> None:
    nodes = [f"model.jaffle_shop.m{i}" for i in range(50)]

    async def scenario() -> list[dict[str, Any]]:
        triggers = [DbtNodeResultTrigger("dag", RUN, PRODUCER, uid, poll_interval=0.05) for uid in nodes]
        waits = [asyncio.ensure_future(_first_event(t)) for t in triggers]
        await asyncio.sleep(0.2)  # a few rounds with nothing published
        for uid in nodes[:25]:
            producer.publish(uid, "success")
        await asyncio.sleep(0.2)
        producer.state = "failed"  # killed: the rest get producer_ended
        return await asyncio.gather(*waits)

    events = asyncio.run(scenario())
    kinds = {e["unique_id"]: e["kind"] for e in events}
    assert kinds == {uid: "result" if i < 25 else "producer_ended" for i, uid in enumerate(nodes)}
    rounds = producer.state_reads
    assert 3 <= rounds <= 20  # one state read per round, not one per waiting node
    assert producer.xcom_reads.count(DONE_KEY) == rounds
    records_read = sorted(k for k in producer.xcom_reads if k != DONE_KEY)
    assert records_read == sorted(record_key(u) for u in nodes[:25])  # each record read once
    assert DbtNodeResultTrigger("dag", RUN, PRODUCER, nodes[0]).serialize()[1] == {
        "dag_id": "dag",
        "run_id": RUN,
        "producer_task_id": PRODUCER,
        "unique_id": nodes[0],
        "poll_interval": 2.0,
    }


async def _first_event(trigger: DbtNodeResultTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")
