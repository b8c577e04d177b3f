"""The task of one dbt node in a :class:`~airflow_dbt_provider.task_groups.dbt.DbtTaskGroup`.

:class:`DbtNodeOperator` is a :class:`DbtBuildOperator` whose selection is one node: it runs
``dbt build --select <node> --indirect-selection=cautious``, so the node's single-parent tests run
with it and nothing else does. Everything else — the profile, env, vars, parse cache, ``dbt retry``
on an Airflow retry, the outcome mapping — is the build operator's, so a node task takes exactly
the operators' arguments.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import AssetAlias, Context

from airflow_dbt_provider.assets import BuiltAsset, emit_asset_events
from airflow_dbt_provider.compat import HAS_START_FROM_TRIGGER
from airflow_dbt_provider.core import DbtResult
from airflow_dbt_provider.operators.dbt import DbtBuildOperator
from airflow_dbt_provider.triggers.dbt_task_group import (
    DONE_KEY,
    FINISHED_KEY,
    PRODUCER_ENDED,
    PRODUCER_NOT_STARTED,
    DbtNodeResultTrigger,
    is_fresh,
    node_summary,
    producer_state,
    record_key,
)

try:  # Airflow >= 3.2 keeps it in the Task SDK
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef,attr-defined,unused-ignore]


class DbtNodeOperator(DbtBuildOperator):
    """``dbt build`` of one node and its single-parent tests.

    :param unique_id: the node's dbt unique id (``model.jaffle_shop.orders``).
    :param node_select: the ``--select`` value that selects exactly that node.
    :param exclude: passed on, so tests the group's ``exclude`` left out stay out.
    """

    template_fields = DbtBuildOperator.template_fields
    ui_color = "#ff8a6b"

    def __init__(self, *, unique_id: str, node_select: str, **kwargs: Any) -> None:
        flags = {**(kwargs.pop("dbt_flags", None) or {}), "indirect_selection": "cautious"}
        kwargs.pop("select", None)
        kwargs.pop("selector", None)  # a YAML selector would widen the node's selection
        super().__init__(select=node_select, dbt_flags=flags, **kwargs)
        self.unique_id = unique_id


# -- single_build ------------------------------------------------------------------------------------

#: Node statuses that count as the node (or one of its tests) failing.
_FAILED = frozenset({"error", "fail", "runtime error"})
#: Seconds between reschedules while the producer has not started: 5 s backing off to 60 s.
RESCHEDULE_MIN, RESCHEDULE_MAX = 5.0, 60.0


class DbtNodeFailedError(Exception):
    """dbt's single build reported this node (or one of its tests) as failed."""


class DbtProducerEndedError(Exception):
    """The group's producer ended (killed, timed out) before it finished this node."""


class DbtBuildProducerOperator(DbtBuildOperator):
    """The one ``dbt build`` of a ``single_build`` group; publishes each node's record as dbt goes.

    A record (XCom ``dbt_node:<unique_id>``) is pushed once the node and its single-parent tests
    have finished: ``{status, message, completed_at, producer_try, published_at, nodes}``. dbt calls
    back from its worker threads, and the task's link to Airflow is not thread-safe, so callbacks
    only queue; one publisher thread pushes. When the build returns (passed or failed), the nodes
    not yet published get their records from the run's results and a ``dbt_build:finished`` marker
    follows; a killed producer pushes no marker, which is how node tasks tell the two apart.

    :param members: for each node task, the unique ids whose results make its record (the node
        first, then its attached tests).
    """

    ui_color = "#ff694b"

    def __init__(self, *, members: Mapping[str, Sequence[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = members
        self._publisher: _Publisher | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the build with a publisher attached; records reach XCom as nodes finish."""
        ti = context["ti"]
        self._publisher = _Publisher(ti, _Records(self.members, int(getattr(ti, "try_number", 1) or 1)))
        self._publisher.start()
        try:
            return super().execute(context)
        finally:
            self._publisher.stop()

    def on_kill(self) -> None:
        """Publish nothing more: a killed build's later results are not the group's (dbt may still
        finish a node between the kill and the process's end; its task must then build it itself)."""
        if self._publisher is not None:
            self._publisher.kill()
        super().on_kill()

    def _make_runner(self, profiles_dir: str | None, target: str | None, profile_env: dict[str, str]) -> Any:
        runner = super()._make_runner(profiles_dir, target, profile_env)
        if self._publisher is not None and hasattr(runner, "callbacks"):
            runner.callbacks.append(self._publisher.on_event)
        return runner

    def _outcome(self, result: DbtResult, context: Context) -> dict[str, Any]:
        if self._publisher is not None:
            self._publisher.finish(result)
        return super()._outcome(result, context)


class _Records:
    """Turns node results into one record per node task (node and attached tests together)."""

    def __init__(self, members: Mapping[str, Sequence[str]], producer_try: int) -> None:
        self.members = members
        self.producer_try = producer_try
        self.owner = {m: owner for owner, ms in members.items() for m in ms}
        self.results: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}
        self.published: set[str] = set()

    def add(self, unique_id: str, status: str, message: str | None, completed_at: str | None) -> Any:
        """Note one finished node; return ``(owner, record)`` when its task's record is complete."""
        owner = self.owner.get(unique_id)
        if owner is None or owner in self.published:
            return None
        seen = self.results.setdefault(owner, {})
        seen[unique_id] = (status, message, completed_at)
        own = seen.get(owner)
        complete = own is not None and (
            own[0] in _FAILED or own[0] == "skipped" or len(seen) == len(self.members[owner])
        )
        return (owner, self.record(owner)) if complete else None

    def record(self, owner: str) -> dict[str, Any]:
        """The record of ``owner`` from what has been seen of it."""
        seen = self.results.get(owner, {})
        own = seen.get(owner)
        failed = [(uid, msg) for uid, (status, msg, _) in seen.items() if status in _FAILED]
        message: str | None
        if failed:
            status = "error"
            message = "; ".join(f"{uid}: {msg or 'failed'}" for uid, msg in failed)
        elif own is None or own[0] == "skipped":
            status, message = "skipped", (own[1] if own else None)
        else:
            status, message = "success", own[1]
        done = [c for _, _, c in seen.values() if c]
        self.published.add(owner)
        return {
            "status": status,
            "message": message,
            "completed_at": max(done) if done else None,
            "producer_try": self.producer_try,
            "published_at": _utcnow().isoformat(),
            "nodes": {uid: s for uid, (s, _, _) in seen.items()},
        }


class _Publisher:
    """One thread that pushes records to XCom; dbt's threads only hand it events."""

    _STOP = object()

    def __init__(self, ti: Any, records: _Records) -> None:
        self.ti = ti
        self.records = records
        self.done: list[str] = []
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="dbt-node-publisher", daemon=True)
        self.killed = threading.Event()

    def start(self) -> None:
        self.thread.start()

    def on_event(self, event: Any) -> None:
        """dbt callback (any thread): queue each finished node; never raises."""
        try:
            if event.info.name != "NodeFinished":
                return
            data = event.data
            self.queue.put(
                (
                    data.node_info.unique_id,
                    str(data.run_result.status),
                    data.run_result.message or None,
                    data.node_info.node_finished_at or None,
                )
            )
        except Exception:  # pragma: no cover - a callback must never break dbt
            logging.getLogger(__name__).debug("Could not read a dbt event", exc_info=True)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            batch = [item]
            while not self.queue.empty():
                batch.append(self.queue.get())
            stop = any(i is self._STOP for i in batch)
            self._publish([self.records.add(*i) for i in batch if i is not self._STOP])
            if stop:
                return

    def kill(self) -> None:
        """The producer was killed: push no record and no marker from now on (any thread)."""
        self.killed.set()

    def _publish(self, ready: Sequence[Any]) -> None:
        if self.killed.is_set():
            return
        ready = [r for r in ready if r is not None]
        for owner, record in ready:
            self.ti.xcom_push(key=record_key(owner), value=record)
            self.done.append(owner)
        if ready:
            self.ti.xcom_push(key=DONE_KEY, value=list(self.done))

    def stop(self) -> None:
        """Drain the queue and end the thread (idempotent)."""
        if self.thread.is_alive():
            self.queue.put(self._STOP)
            self.thread.join()

    def finish(self, result: DbtResult) -> None:
        """After the build returned: the remaining records from its results, then the marker."""
        self.stop()
        if self.killed.is_set():
            return
        for node in result.nodes:
            done = node.completed_at.isoformat() if node.completed_at else None
            self.records.add(node.unique_id, node.status, node.message, done)
        left = [
            o for o in self.records.members if o not in self.records.published and o in self.records.results
        ]
        self._publish([(owner, self.records.record(owner)) for owner in left])
        self.ti.xcom_push(
            key=FINISHED_KEY, value={"producer_try": self.records.producer_try, "success": result.success}
        )


class DbtNodeResultOperator(DbtNodeOperator):
    """A ``single_build`` node task: ends with its node's result from the producer's build.

    Each time it starts: a success record → success; an error record → fails with dbt's message,
    naming the node; a skipped node, no record once the producer finished, or a record older than
    this try of a retried/cleared task → builds its own node (as ``per_node`` does); no record while
    the producer is queued, running or up for retry → defers to :class:`DbtNodeResultTrigger`; the
    producer not yet queued → reschedules (5 s backing off to 60 s), so ``airflow dags test``,
    which runs one task at a time, works. A producer that ended without finishing (killed, timed
    out) fails the unfinished node tasks, naming it; clearing them builds each alone.

    No worker slot on the success path: the trigger ends the task itself from a fresh success
    record, and on Airflow >= 3.3 the task also *starts* in the triggerer (``start_from_trigger``),
    the trigger waiting while the producer has not started. Failures resume on a worker.

    Asset events: the producer's builds get theirs from the group's end task; this task emits its
    node's event (through ``group_alias``) only when it built the node itself.

    :param producer_task_id: the group's ``dbt_build`` task.
    :param poll_interval: seconds between the trigger's shared polls.
    :param group_alias: the group's ``AssetAlias`` name (the task's outlet when it has a relation).
    :param node_uri: the node's Asset URI; ``None`` for a test, which builds no relation.
    """

    def __init__(
        self,
        *,
        producer_task_id: str,
        poll_interval: float = 2.0,
        group_alias: str | None = None,
        node_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        if group_alias and node_uri:
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), AssetAlias(name=group_alias)]
        super().__init__(**kwargs)
        self.producer_task_id = producer_task_id
        self.poll_interval = poll_interval
        self.group_alias = group_alias
        self.node_uri = node_uri
        if HAS_START_FROM_TRIGGER:
            from airflow.triggers.base import StartTriggerArgs

            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=f"{DbtNodeResultTrigger.__module__}.{DbtNodeResultTrigger.__qualname__}",
                trigger_kwargs={
                    "producer_task_id": producer_task_id,
                    "unique_id": self.unique_id,
                    "poll_interval": poll_interval,
                },
                next_method="execute_complete",
                next_kwargs=None,
                timeout=None,
            )

    def execute(self, context: Context) -> dict[str, Any]:
        """Settle from the producer's record, wait for it, or build the node."""
        return self._settle(context)

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Back from the trigger: decide again from the current record and producer state.

        Also reached under ``airflow dags test`` after the trigger's ``TaskSuccessEvent`` (its
        payload is the state, ``"success"``): the fresh success record is then found again.
        """
        return self._settle(context)

    def _settle(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        try_number, started = int(ti.try_number or 1), getattr(ti, "start_date", None)
        state = self._producer_state(ti)
        if state in PRODUCER_NOT_STARTED:
            self._reschedule(ti, state)
        record = ti.xcom_pull(task_ids=self.producer_task_id, key=record_key(self.unique_id))
        if record is not None and is_fresh(record, try_number, started):
            if record["status"] == "success":
                self.log.info(
                    "%s: built by %s (dbt: %s)", self.unique_id, self.producer_task_id, record["nodes"]
                )
                return node_summary(self.unique_id, self.producer_task_id, record)
            if record["status"] == "error":
                raise DbtNodeFailedError(
                    f"dbt build ({self.producer_task_id}) failed {self.unique_id}: {record['message']}"
                )
            self.log.info("%s was skipped by %s; building it here", self.unique_id, self.producer_task_id)
            return self._build(context)
        if record is not None and state in PRODUCER_ENDED:
            self.log.info("The record of %s predates this try; building it here", self.unique_id)
            return self._build(context)
        if state not in PRODUCER_ENDED:
            self.defer(
                trigger=DbtNodeResultTrigger(
                    producer_task_id=self.producer_task_id,
                    unique_id=self.unique_id,
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    poll_interval=self.poll_interval,
                    try_number=try_number,
                    not_before=started.isoformat() if try_number > 1 and started else None,
                ),
                method_name="execute_complete",
            )
        finished = ti.xcom_pull(task_ids=self.producer_task_id, key=FINISHED_KEY)
        if finished is None and try_number <= 1:
            raise DbtProducerEndedError(
                f"{self.producer_task_id} ended ({state}) before dbt finished {self.unique_id}; "
                "clear this task to build the node on its own"
            )
        self.log.info("%s has no result from %s; building it here", self.unique_id, self.producer_task_id)
        return self._build(context)

    def _build(self, context: Context) -> dict[str, Any]:
        """Build the node here (as ``per_node``); the task then emits its node's Asset event."""
        summary = DbtNodeOperator.execute(self, context)
        if self.group_alias and self.node_uri:
            built = [BuiltAsset(self.unique_id, self.node_uri)]
            emit_asset_events(context, self.group_alias, built, self.log)
        return summary

    def _producer_state(self, ti: Any) -> str:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(
            dag_id=ti.dag_id, task_ids=[self.producer_task_id], run_ids=[ti.run_id]
        )
        return producer_state(states, ti.run_id, self.producer_task_id) or "none"

    def _reschedule(self, ti: Any, state: str) -> None:
        started = getattr(ti, "start_date", None)
        waited = (_utcnow() - started).total_seconds() if started else 0.0
        delay = min(RESCHEDULE_MAX, max(RESCHEDULE_MIN, waited))
        self.log.info(
            "%s has not started (%s); checking again in %.0f s", self.producer_task_id, state, delay
        )
        raise AirflowRescheduleException(_utcnow() + timedelta(seconds=delay))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
