"""Watch a dbt Cloud run from the triggerer until it ends, the deadline passes, or the task is killed.

What the trigger promises, and why:

* **Transient faults never fail the task.** 429, 5xx, resets and timeouts are retried inside the
  client; when its retries are exhausted the trigger logs a warning and polls again at the next
  interval. Only a terminal run status, the deadline, or an error that persists over several polls
  (401/403 token, 404 run) ends the watch.
* **The trigger owns the deadline** (``end_time``, absolute epoch seconds) and reports it as a
  ``timeout`` event, so ``execute_complete`` can cancel the run. A plain ``defer(timeout=...)``
  would end the task without cancelling anything in dbt Cloud.
* **Running twice is harmless.** The trigger only reads the run and keeps its deadline absolute, so a
  triggerer restart or redistribution just resumes watching.
* **Cancel on kill, also while deferred.** ``on_kill`` cancels the run when a user kills the
  deferred task: marks it failed, marks it success, or clears it (what each action means is defined
  once, in ``docs/dbt_cloud_operators.md``, "What kill, clear and retry do"). Airflow 3.3.x also
  calls ``on_kill`` on a triggerer whose triggers were reassigned after missed heartbeats
  (apache/airflow PR #73454), while the task is still deferred elsewhere in the *same try*; so the
  task instance's state is read through the Task SDK first, and a deferred task is left alone only
  when it is still the try this trigger watches (a cleared task deferred again is a new try).
* **The cancel outlives the triggerer's repeated cancellation.** The cancel runs as an asyncio task
  of its own (held by a strong reference, with its own client, shielded, bounded by ``[triggerer]
  on_kill_timeout``), because Airflow 3.3.2 cancels a killed trigger again about once a second and
  swallows the ``CancelledError`` that lands in ``on_kill`` (see :func:`_outlast_cancellation`).
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
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudTLSError,
    Run,
    RunStatus,
)
from airflow_dbt_provider.cloud.events import RunEvent, RunEventStatus
from airflow_dbt_provider.cloud.pool import LoopCache
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook
from airflow_dbt_provider.trigger_comms import fetch_task_states, fetch_xcom

TRIGGER_CLASSPATH = "airflow_dbt_provider.triggers.dbt_cloud.DbtCloudRunTrigger"
DEFAULT_CONN_ID = "dbt_cloud_api_default"
#: Polls in a row answered with an error that retrying will not fix before the trigger gives up.
PERSISTENT_ERROR_POLLS = 3
#: Airflow's default for ``[triggerer] on_kill_timeout``: the budget of the whole kill path.
DEFAULT_ON_KILL_TIMEOUT = 30.0
#: Share of that budget the task-state lookup may use, so the cancel request always gets the rest.
LOOKUP_BUDGET_SHARE = 1 / 3
#: Seconds between status reads while waiting for dbt Cloud to confirm a cancel.
CANCEL_CONFIRM_POLL_S = 1.0
#: XCom the operator pushes just before it defers: the try this trigger watches the run for. A new
#: try (after a clear) starts with its XComs cleared, so the key tells a reassigned trigger of the
#: same try from the stale trigger of a cleared one.
DEFERRED_TRY_XCOM_KEY = "dbt_cloud_deferred_try"
#: Errors that do not go away by asking again: wrong token, missing run, rejected request, bad TLS.
_PERSISTENT_ERRORS = (
    DbtCloudAuthError,
    DbtCloudNotFoundError,
    DbtCloudRequestError,
    DbtCloudTLSError,
    DbtCloudConfigError,
)

#: How long one trigger's connection lookup serves the others starting on the same triggerer. A
#: trigger keeps the settings it started with; an auth error drops the shared copy at once.
CONNECTION_CACHE_TTL_S = 30.0
_CONNECTIONS: LoopCache[str, ClientSettings] = LoopCache(CONNECTION_CACHE_TTL_S)


#: Kill-path cancels in flight. The event loop holds tasks only weakly, and a cancel must outlive
#: the trigger task that started it, so each is kept here until it is done.
_KILL_CANCELS: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class KillVerdict:
    """Whether a kill means "cancel the run", and why (logged either way)."""

    cancel: bool
    reason: str


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
    :param try_number: The try that deferred (``None`` in triggers serialized by versions before
        0.2, which then treat any deferred state as a reassignment).
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
        try_number: int | None = None,
    ) -> None:
        super().__init__()
        self.run_id = int(run_id)
        self.dbt_cloud_conn_id = dbt_cloud_conn_id
        self.account_id = None if account_id is None else int(account_id)
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.try_number = None if try_number is None else int(try_number)
        self._client: AsyncDbtCloudClient | None = None
        self._watch_settings: ClientSettings | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """JSON primitives only, so any serializer (and the triggerer's decryption) round-trips them.

        ``try_number`` is written only when set, so a trigger stored by an older version (which had
        no such kwarg) serializes exactly as it was stored.
        """
        kwargs: dict[str, Any] = {
            "run_id": self.run_id,
            "dbt_cloud_conn_id": self.dbt_cloud_conn_id,
            "account_id": self.account_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "cancel_on_kill": self.cancel_on_kill,
        }
        if self.try_number is not None:
            kwargs["try_number"] = self.try_number
        return TRIGGER_CLASSPATH, kwargs

    # --- watching ------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Fire exactly one event: the run's terminal status, ``timeout`` or ``failed``."""
        await asyncio.sleep(self._first_poll_delay())
        try:
            settings = await self._settings()
        except Exception as exc:
            yield self._event(
                RunEventStatus.FAILED, f"could not read connection {self.dbt_cloud_conn_id!r}: {exc}"
            )
            return
        self._watch_settings = settings
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
                    return self._event(RunEventStatus.FAILED, f"gave up watching run {self.run_id}: {exc}")
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
                    return TriggerEvent(RunEvent.of_run(run).to_dict())
                if run.status is not last_status:  # a line per change, not per poll
                    self.log.info("dbt Cloud run %s is %s", self.run_id, run.status.name.lower())
                    last_status = run.status
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return self._event(
                    RunEventStatus.TIMEOUT, f"run {self.run_id} did not finish before the deadline"
                )
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

    def _event(self, status: RunEventStatus, message: str) -> TriggerEvent:
        return TriggerEvent(RunEvent(status, self.run_id, message).to_dict())

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
        """Cancel the run when a user killed the deferred task (not when it is merely reassigned).

        The work runs in a task of its own that survives whatever happens to this coroutine; this
        coroutine only waits for it, so the outcome is logged in the trigger's log when it can be.
        """
        if not self.cancel_on_kill:
            return
        cancel = asyncio.get_running_loop().create_task(
            self._cancel_after_kill(on_kill_budget()), name=f"dbt-cloud-cancel-run-{self.run_id}"
        )
        _KILL_CANCELS.add(cancel)
        cancel.add_done_callback(_KILL_CANCELS.discard)
        await _outlast_cancellation(cancel)

    async def _cancel_after_kill(self, budget: float) -> None:
        """Decide, cancel, confirm: the whole kill path within ``budget`` seconds, logged once."""
        deadline = time.monotonic() + budget
        lookup_budget = budget * LOOKUP_BUDGET_SHARE
        # Read the connection while the state is looked up: each is a supervisor round trip.
        settings = asyncio.ensure_future(self._cancel_settings())
        try:
            try:
                verdict = await asyncio.wait_for(self.kill_verdict(), timeout=lookup_budget)
            except asyncio.TimeoutError:  # not the builtin on Python 3.10
                verdict = KillVerdict(
                    False,
                    f"could not read the task's state within {lookup_budget:.0f}s; leaving the run alone",
                )
            if not verdict.cancel:
                log = self.log.warning if verdict.reason.startswith("could not") else self.log.info
                log("dbt Cloud run %s: %s", self.run_id, verdict.reason)
                return
            self.log.info("dbt Cloud run %s: %s; cancelling the run", self.run_id, verdict.reason)
            remaining = max(deadline - time.monotonic(), 0.0)
            try:
                run = await asyncio.wait_for(self._cancel_and_confirm(settings), timeout=remaining)
            except asyncio.TimeoutError:
                self.log.warning(
                    "dbt Cloud run %s: cancel not confirmed within [triggerer] on_kill_timeout (%.0fs); "
                    "check the run in dbt Cloud",
                    self.run_id,
                    budget,
                )
            except Exception as exc:  # any failure is reported, none may escape
                self.log.warning("dbt Cloud run %s: cancel failed: %s", self.run_id, exc)
            else:
                if run.status is RunStatus.CANCELLED:
                    self.log.info("dbt Cloud run %s: cancel confirmed (status 30, cancelled)", self.run_id)
                else:
                    ended = run.status.name.lower()
                    self.log.info("dbt Cloud run %s: already %s; nothing to cancel", self.run_id, ended)
        finally:
            settings.cancel()
            if settings.done() and not settings.cancelled():
                settings.exception()  # retrieved: reported through the cancel's outcome, if used

    async def _cancel_settings(self) -> ClientSettings:
        """The settings the trigger watched with (no round trip), else the connection's."""
        if self._watch_settings is not None:
            return self._watch_settings
        return await self._settings()

    async def _cancel_and_confirm(self, settings: asyncio.Future[ClientSettings]) -> Run:
        """Cancel the run on a client of our own unless it already ended; return it once terminal.

        Our own client, because the trigger's ``cleanup()`` closes the shared one right after
        ``on_kill`` returns. A token rotated since the trigger started gets one fresh lookup.
        """
        try:
            return await self._cancel_unless_ended(await settings)
        except DbtCloudAuthError:
            return await self._cancel_unless_ended(await self._settings(fresh=True))

    async def _cancel_unless_ended(self, settings: ClientSettings) -> Run:
        """Cancel the run unless it already ended; poll until dbt Cloud reports it terminal.

        A run that ended needs no cancel: e.g. its trigger was reassigned, fired on the other
        triggerer and the task resumed before this one's ``on_kill`` ran (state "running").
        """
        async with AsyncDbtCloudClient(settings) as client:
            run = await client.get_run(self.run_id)
            if run.status.is_terminal:
                return run
            run = await client.cancel_run(self.run_id)
            while not run.status.is_terminal:
                await asyncio.sleep(CANCEL_CONFIRM_POLL_S)
                run = await client.get_run(self.run_id)
            return run

    async def kill_verdict(self) -> KillVerdict:
        """Cancel unless the task is still deferred in the try this trigger watches (a reassignment)."""
        lookup = await self.lookup_task_instance_state()
        if not lookup.known:
            return KillVerdict(False, "could not confirm the task was killed; leaving the run alone")
        if lookup.state != "deferred":
            return KillVerdict(True, f"task is now {lookup.state}")
        mine = self.try_number
        if mine is None:  # a trigger serialized before try numbers were passed: cannot tell
            return KillVerdict(False, "task is still deferred (trigger reassigned); not cancelling")
        try:
            current = await self.lookup_deferred_try()
        except Exception as exc:  # unknown means "do not cancel on a guess"
            return KillVerdict(False, f"could not read which try is deferred ({exc}); leaving the run alone")
        if current == mine:
            return KillVerdict(False, "task is still deferred (trigger reassigned); not cancelling")
        return KillVerdict(
            True, f"task was cleared and is deferred again in another try ({current}; this trigger's: {mine})"
        )

    async def lookup_deferred_try(self) -> int | None:
        """The try that deferred last, from the XCom the operator pushes before deferring."""
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("no task instance")
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else int(map_index)
        value = await fetch_xcom(DEFERRED_TRY_XCOM_KEY, ti.dag_id, ti.run_id, ti.task_id, map_index)
        if value is None:
            return None
        return int(str(value).strip('"'))

    async def lookup_task_instance_state(self) -> TaskInstanceLookup:
        """The deferred task instance's current state, asked of the triggerer's supervisor."""
        ti = self.task_instance
        if ti is None:
            return TaskInstanceLookup(known=False)
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else int(map_index)
        try:
            states = await fetch_task_states(ti.dag_id, ti.run_id, ti.task_id, map_index)
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


def on_kill_budget() -> float:
    """Seconds the kill path may take: Airflow's ``[triggerer] on_kill_timeout`` (default 30)."""
    try:
        from airflow.configuration import conf

        return max(conf.getfloat("triggerer", "on_kill_timeout", fallback=DEFAULT_ON_KILL_TIMEOUT), 1.0)
    except Exception:  # an unreadable setting falls back to Airflow's default
        return DEFAULT_ON_KILL_TIMEOUT


async def _outlast_cancellation(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` to finish, outlasting cancellation of the caller while it runs.

    Airflow is at fault here: in ``airflow/jobs/triggerer_job_runner.py`` (3.3.2),
    ``TriggerRunner.cancel_triggers`` cancels a killed trigger's task again at every state sync
    (about once a second: the supervisor resends ``to_cancel`` until the trigger is reported
    finished), and ``TriggerRunner.run_trigger`` swallows the ``CancelledError`` that lands in
    ``wait_for(trigger.on_kill(), ...)``, then runs ``cleanup()``. An ``on_kill`` that awaits the
    supervisor (task state, connection) outlasts one sync on SQLite defaults and is cut off before
    it cancels anything. So the cancel runs in ``task`` (shielded: a cancel here never reaches
    it), and this waits on through repeated cancellation; ``task`` is bounded by the budget, so
    this ends. Should the caller still be torn down (on Python 3.11, ``wait_for`` gives up on the
    second cancel), ``task`` goes on and logs its outcome through the triggerer's log.
    """
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            current = asyncio.current_task()
            if current is not None and hasattr(current, "uncancel"):
                current.uncancel()
