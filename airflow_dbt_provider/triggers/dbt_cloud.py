"""Watch a dbt Cloud run from the triggerer until it ends, the deadline passes, or the task is killed.

Design choices, each against a failure users of other providers hit:

* **Transient faults never fail the task.** 429, 5xx, resets and timeouts are retried inside the
  client; when its retries are exhausted the trigger logs a warning and polls again at the next
  interval. Only a terminal run status, the deadline, or an error that persists over several polls
  (401/403 token, 404 run) ends the watch.
* **The trigger owns the deadline** (``end_time``, absolute epoch seconds) and reports it as a
  ``timeout`` event, so ``execute_complete`` can cancel the run. A plain ``defer(timeout=...)``
  would end the task without cancelling anything in dbt Cloud.
* **Running twice is harmless.** The trigger only reads the run and keeps its deadline absolute, so a
  triggerer restart or redistribution just resumes watching.
* **Cancel on kill, also while deferred.** ``on_kill`` cancels the run when a user marks the deferred
  task failed/success or clears it. Airflow 3.3.x also calls ``on_kill`` on a triggerer whose
  triggers were reassigned after missed heartbeats (apache/airflow PR #73454), while the task is
  still deferred elsewhere; so the task instance's state is read through the Task SDK first and the
  run is cancelled only when the task is no longer deferred.
* ``cleanup`` releases local resources (the lease on the shared HTTP transport) only.
* **Cheap at scale.** Hundreds of triggers share one triggerer: they share one aiohttp session
  per event loop and one SSL context per CA bundle (``cloud/pool.py``), and one connection lookup
  per connection id (for :data:`CONNECTION_CACHE_TTL_S`); their first polls are spread over one
  poll interval so a herd never polls in step; a status is logged when it changes, not at every poll.

Only JSON primitives are serialized; the connection is resolved asynchronously in the triggerer
(``aget_connection``), never from the metadata database.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_dbt_provider.cloud import (
    AsyncDbtCloudClient,
    ClientSettings,
    DbtCloudAuthError,
    DbtCloudConfigError,
    DbtCloudError,
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudTLSError,
    Run,
    RunStatus,
)
from airflow_dbt_provider.cloud.pool import LoopCache
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook

TRIGGER_CLASSPATH = "airflow_dbt_provider.triggers.dbt_cloud.DbtCloudRunTrigger"
DEFAULT_CONN_ID = "dbt_cloud_api_default"
#: Polls in a row answered with an error that retrying will not fix before the trigger gives up.
PERSISTENT_ERROR_POLLS = 3
#: Bound on the cancel request in ``on_kill`` (Airflow allows ``[triggerer] on_kill_timeout``, 30 s).
ON_KILL_CANCEL_TIMEOUT = 20.0
#: Errors that do not go away by asking again: wrong token, missing run, rejected request, bad TLS.
_PERSISTENT_ERRORS = (
    DbtCloudAuthError,
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudTLSError,
    DbtCloudConfigError,
)

#: Event statuses. ``success``/``error``/``cancelled`` mirror the run; ``timeout`` is the deadline;
#: ``failed`` means the trigger could not watch the run (bad connection, token, unknown run).
EVENT_STATUSES = ("success", "error", "cancelled", "timeout", "failed")
#: How long one trigger's connection lookup serves the others starting on the same triggerer. A
#: trigger keeps the settings it started with; an auth error drops the shared copy at once.
CONNECTION_CACHE_TTL_S = 30.0
_CONNECTIONS: LoopCache[str, ClientSettings] = LoopCache(CONNECTION_CACHE_TTL_S)


@dataclass(frozen=True)
class TaskInstanceLookup:
    """What the Task SDK said about the deferred task instance: ``known`` False when it could not say."""

    known: bool
    state: str | None = None


class DbtCloudRunTrigger(BaseTrigger):
    """Poll a dbt Cloud run asynchronously and fire one event when it ends or the deadline passes.

    :param run_id: The dbt Cloud run to watch.
    :param dbt_cloud_conn_id: Airflow connection (type ``dbt_cloud_api`` or the official ``dbt_cloud``).
    :param account_id: Account of the run; defaults to the connection's.
    :param poll_interval: Seconds between status checks.
    :param end_time: Deadline as epoch seconds; ``None`` waits for as long as the run takes.
    :param cancel_on_kill: Cancel the run when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        run_id: int,
        dbt_cloud_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | None = None,
        poll_interval: float = 60.0,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.run_id = int(run_id)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = None if account_id is None else int(account_id)
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._client: AsyncDbtCloudClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """JSON primitives only, so any serializer (and the triggerer's decryption) round-trips them."""
        return (
            TRIGGER_CLASSPATH,
            {
                "run_id": self.run_id,
                "dbt_cloud_conn_id": self.dbt_cloud_conn_id,
                "account_id": self.account_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    # --- watching ------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Fire exactly one event: the run's terminal status, ``timeout`` or ``failed``."""
        await asyncio.sleep(self._first_poll_delay())
        try:
            settings = await self._settings()
        except Exception as exc:
            yield self._event("failed", f"could not read connection {self.dbt_cloud_conn_id!r}: {exc}")
            return
        self._client = AsyncDbtCloudClient(settings)
        try:
            event = await self._watch(self._client)
        finally:
            await self._close_client()
        yield event

    async def _watch(self, client: AsyncDbtCloudClient) -> TriggerEvent:
        """Poll until the run is terminal, the deadline passes, or an error persists."""
        persistent_errors = 0
        last_status: RunStatus | None = None
        while True:
            try:
                run = await client.get_run(self.run_id)
            except _PERSISTENT_ERRORS as exc:
                persistent_errors += 1
                if isinstance(exc, DbtCloudAuthError):  # a token rotated since: let others re-read it
                    _CONNECTIONS.forget(self.dbt_cloud_conn_id)
                if persistent_errors >= PERSISTENT_ERROR_POLLS:
                    return self._event("failed", f"gave up watching run {self.run_id}: {exc}")
                self.log.warning("dbt Cloud run %s: %s (will ask again)", self.run_id, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # transient: retries exhausted, reset, malformed answer, ...
                persistent_errors = 0
                self.log.warning(
                    "dbt Cloud run %s: status check failed transiently (%s); polling again", self.run_id, exc
                )
            else:
                persistent_errors = 0
                if run.status.is_terminal:
                    return self._terminal_event(run)
                if run.status is not last_status:  # a line per change, not per poll
                    self.log.info("dbt Cloud run %s is %s", self.run_id, run.status.name.lower())
                    last_status = run.status
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return self._event("timeout", f"run {self.run_id} did not finish before the deadline")
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    def _first_poll_delay(self) -> float:
        """A random offset within one poll interval (and before the deadline) for the first poll.

        Triggers arrive in herds: a triggerer restart or a mapped task defers hundreds at once.
        Polled in step, they would all wake in the same event-loop turn (stalling every other
        trigger on it) and hit dbt Cloud's rate limit together. Spread over one interval they
        stay spread. It costs nothing: a status is never more than one interval old anyway.
        """
        remaining = self._remaining()
        window = self.poll_interval if remaining is None else min(self.poll_interval, remaining)
        return random.uniform(0.0, max(0.0, window))

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _terminal_event(self, run: Run) -> TriggerEvent:
        status = run.status.name.lower()
        message = {
            "success": f"run {run.id} succeeded",
            "error": f"run {run.id} failed: {run.status_message or 'see its steps'}",
            "cancelled": f"run {run.id} was cancelled in dbt Cloud",
        }[status]
        return self._event(status, message, run_status=int(run.status))

    def _event(self, status: str, message: str, run_status: int | None = None) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "run_id": self.run_id, "run_status": run_status, "message": message}
        )

    async def _settings(self, *, fresh: bool = False) -> ClientSettings:
        """Client settings from the connection; shared for a while by the triggers of one triggerer.

        A herd of triggers on one connection (a triggerer restart, a mapped task) would otherwise
        ask the supervisor for the same connection hundreds of times in a second.
        """
        if fresh:
            _CONNECTIONS.forget(self.dbt_cloud_conn_id)
        settings = await _CONNECTIONS.get(self.dbt_cloud_conn_id, self._read_connection)
        return settings if self.account_id is None else replace(settings, account_id=self.account_id)

    async def _read_connection(self) -> ClientSettings:
        return await DbtCloudHook(dbt_cloud_conn_id=self.dbt_cloud_conn_id).aget_settings()

    # --- kill and cleanup ----------------------------------------------------------------------

    async def on_kill(self) -> None:
        """Cancel the run when a user killed the deferred task (not when it is merely reassigned)."""
        if not self.cancel_on_kill:
            return
        lookup = await self.lookup_task_instance_state()
        if not lookup.known:
            self.log.warning(
                "dbt Cloud run %s: could not confirm the task was killed; leaving the run alone", self.run_id
            )
            return
        if lookup.state == "deferred":
            self.log.info(
                "dbt Cloud run %s: task is still deferred (trigger reassigned); not cancelling", self.run_id
            )
            return
        self.log.info("dbt Cloud run %s: task is now %s; cancelling the run", self.run_id, lookup.state)
        settings = await self._settings(fresh=True)
        async with AsyncDbtCloudClient(settings) as client:
            try:
                await asyncio.wait_for(client.cancel_run(self.run_id), timeout=ON_KILL_CANCEL_TIMEOUT)
            except (DbtCloudError, TimeoutError) as exc:
                self.log.warning("dbt Cloud run %s: cancel failed: %s", self.run_id, exc)

    async def lookup_task_instance_state(self) -> TaskInstanceLookup:
        """The deferred task instance's current state, asked of the triggerer's supervisor."""
        ti = self.task_instance
        if ti is None:
            return TaskInstanceLookup(known=False)
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else int(map_index)
        try:
            states = await _fetch_task_states(ti.dag_id, ti.run_id, ti.task_id, map_index)
        except Exception as exc:
            self.log.warning("could not read the state of task %s: %s", ti.task_id, exc)
            return TaskInstanceLookup(known=False)
        key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
        run_states = states.get(ti.run_id, {})
        if key not in run_states:
            # The task instance is gone (DAG run deleted): nobody waits for the run any more.
            return TaskInstanceLookup(known=True, state="removed")
        state = run_states[key]
        return TaskInstanceLookup(known=True, state=None if state is None else str(state))

    async def cleanup(self) -> None:
        """Release the pooled connection; never touches the run (a restart is not a kill)."""
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def _fetch_task_states(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    """``{run_id: {task_key: state}}`` through the Task SDK's supervisor channel (no DB access)."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetTaskStates

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        raise RuntimeError("not running under an Airflow supervisor (no SUPERVISOR_COMMS)")
    request = GetTaskStates(
        dag_id=dag_id, task_ids=[task_id], run_ids=[run_id], map_index=None if map_index < 0 else map_index
    )
    response = (
        await comms.asend(request)
        if hasattr(comms, "asend")
        else await asyncio.to_thread(comms.send, request)
    )
    task_states = getattr(response, "task_states", None)
    if not isinstance(task_states, dict):
        raise RuntimeError(f"unexpected answer to GetTaskStates: {type(response).__name__}")
    return task_states
