"""How a try of an Airflow task gets its dbt Cloud run: adopt, retry or trigger, never a duplicate.

Airflow-free: the operator hands in who is asking (:class:`TaskInstanceRef`) and what the task
state store holds, and gets back a :class:`RunStartDecision`.

**The run's cause says which task instance and try started it.** Every run the operator triggers
carries a marker at the end of its ``cause``::

    Airflow: DAG nightly, task dbt_cloud, run scheduled__2026-12-01T00:00:00+00:00 [airflow:3f9a2c1b7d4e:2:3]

``3f9a2c1b7d4e`` is a hash of the task instance (DAG id, DAG run id, task id, map index), ``2`` the
try that triggered the run and ``3`` that try's ``max_tries``. The marker is written in the same
request that creates the run, so it cannot be lost the way a record written *after* the trigger can
(a worker dying in between, an answer lost on the wire, a clear wiping the task state store:
apache/airflow #72100). A new try finds its task instance's newest run by listing the job's runs
newest first (``job_definition_id``, ``order_by=-id``), page by page, reading the markers
client-side: the list endpoint has no cause filter. The search stops at runs created before the DAG
run started (less an hour for clock skew), so it reads the runs of one DAG run's lifetime, not the
job's history (a clear of a finished DAG run restarts it: the runs before are not read, nor
needed). ``created_at__range`` would bound it server-side, but it is reported rejected by the live
API; stopping client-side reads the same pages without depending on it.

**Retry or clear.** ``max_tries`` tells them apart, as in the task state store: Airflow keeps it
across automatic retries and recomputes it (``try_number + retries``) when a user clears a task that
is not running. A user who clears a *running* task, or marks it failed or successful, kills it, and
the kill cancels the run; a cancelled run is never adopted or retried. So a try adopts its task
instance's newest run only when that run is still in flight *and* was started under the same
``max_tries``; retries it from the failed step (``retry_from_failure``) only when it failed (status
20) under the same ``max_tries``; and otherwise triggers a fresh run.

**Runs that carry no marker.** ``POST /runs/{id}/retry/`` takes no cause. The task state store (Airflow
3.3) remembers such a retry's run; without it the search follows dbt Cloud's ``retrying_run_id``
from the marked run to its retries (the spec does not say which end carries the field, so either
end is read: the retry is always the newer run).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_dbt_provider.cloud.client import DbtCloudClient
from airflow_dbt_provider.cloud.errors import DbtCloudNotFoundError
from airflow_dbt_provider.cloud.models import Run, RunStatus
from airflow_dbt_provider.cloud.options import MAX_CAUSE_LENGTH
from airflow_dbt_provider.text import one_line, shorten

#: Hex digits of the task instance token: 48 bits, so two task instances of one job never share one.
TOKEN_LENGTH = 12
#: Key of the marker in a JSON cause (``openlineage_inject_parent_job_info``).
LINEAGE_MARKER_KEY = "airflow_ti"
#: How far before the DAG run's start the search still reads runs (dbt Cloud's clock may lag).
CLOCK_SKEW = timedelta(hours=1)
_MARKER = re.compile(rf"\[airflow:([0-9a-f]{{{TOKEN_LENGTH}}}):(\d+):(\d+)\]")
_IN_FLIGHT = [status for status in RunStatus if status not in RunStatus.TERMINAL]


# --- who is asking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInstanceRef:
    """The task instance a try belongs to, and the try: what a run's cause marker records."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    max_tries: int

    @classmethod
    def of(cls, ti: Any, dag_run_id: str | None = None) -> TaskInstanceRef:
        """The reference of a task instance (an Airflow ``RuntimeTaskInstance`` or alike)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(dag_run_id or ti.run_id),
            task_id=str(ti.task_id),
            map_index=-1 if map_index is None else int(map_index),
            try_number=int(getattr(ti, "try_number", 0) or 0),
            max_tries=int(getattr(ti, "max_tries", 0) or 0),
        )

    @property
    def token(self) -> str:
        """Short, stable across tries and clears, different for every task instance (map index too)."""
        key = "\x1f".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return hashlib.sha256(key.encode()).hexdigest()[:TOKEN_LENGTH]

    @property
    def default_reason(self) -> str:
        """The run's cause when the user gives no ``trigger_reason``: DAG, task and DAG run."""
        task = self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"
        return f"Airflow: DAG {self.dag_id}, task {task}, run {self.run_id}"

    @property
    def marker(self) -> str:
        return f"[airflow:{self.token}:{self.try_number}:{self.max_tries}]"


@dataclass(frozen=True)
class RunMark:
    """A marker read back from a run's cause."""

    token: str
    try_number: int
    max_tries: int

    @classmethod
    def parse(cls, cause: str | None) -> RunMark | None:
        """The last marker in ``cause`` (ours is appended last, after anything a user wrote)."""
        found = _MARKER.findall(cause or "")
        if not found:
            return None
        token, try_number, max_tries = found[-1]
        return cls(token, int(try_number), int(max_tries))


# --- the cause ---------------------------------------------------------------------------------


def compose_cause(reason: str, ti: TaskInstanceRef) -> str:
    """``reason`` (whitespace collapsed, shortened with ``…`` if needed) and the marker: ≤ 255 chars."""
    marker = ti.marker
    text = shorten(one_line(reason), MAX_CAUSE_LENGTH - len(marker) - 1)
    return f"{text} {marker}" if text else marker


def lineage_room(ti: TaskInstanceRef) -> int:
    """Characters left for the OpenLineage parent JSON once the marker key is added to it."""
    return MAX_CAUSE_LENGTH - len(json.dumps({LINEAGE_MARKER_KEY: ti.marker}, separators=(",", ":"))) + 1


def compose_lineage_cause(parent_json: str, ti: TaskInstanceRef) -> str | None:
    """The OpenLineage parent JSON with the marker as one more key, so it stays JSON for lineage
    consumers; ``None`` when it is not a JSON object or does not fit in 255 characters."""
    try:
        payload = json.loads(parent_json)
    except ValueError:
        return None
    if not isinstance(payload, Mapping):
        return None
    text = json.dumps({**payload, LINEAGE_MARKER_KEY: ti.marker}, separators=(",", ":"))
    return text if len(text) <= MAX_CAUSE_LENGTH else None


# --- the decision ------------------------------------------------------------------------------


class RunStart(str, enum.Enum):
    """How a try gets its run."""

    ADOPT = "adopt"  # watch a run that is already in flight; trigger nothing
    RETRY = "retry"  # POST /runs/{id}/retry/ on the previous try's failed run
    TRIGGER = "trigger"  # start a fresh run of the job


@dataclass(frozen=True)
class StoredRun:
    """The run a try of this task instance started: from the task state store or a cause marker.

    ``max_tries`` tells a retry from a user's clear: Airflow keeps a task instance's ``max_tries``
    across automatic retries and recomputes it (``try_number + retries``) when a user clears it.
    """

    run_id: int
    job_id: int
    try_number: int
    max_tries: int

    def to_state(self) -> dict[str, Any]:
        """The task state store's value: the fields, JSON primitives only."""
        return asdict(self)

    @classmethod
    def from_state(cls, value: Any) -> StoredRun | None:
        """Parse what the store returned; anything unreadable counts as nothing stored."""
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                run_id=int(value["run_id"]),
                job_id=int(value["job_id"]),
                try_number=int(value.get("try_number", 0)),
                max_tries=int(value["max_tries"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class RunStartDecision:
    action: RunStart
    run_id: int | None
    reason: str


def decide_run_start(
    *,
    job_id: int,
    max_tries: int,
    stored: StoredRun | None,
    stored_status: RunStatus | None,
    retry_from_failure: bool,
    in_flight_run_id: int | None = None,
) -> RunStartDecision:
    """Decide how this try gets its run, so that a retry never starts a duplicate by accident.

    A cancelled run (a kill, a timeout, a user in dbt Cloud) is never adopted nor retried.

    :param job_id: The job this try runs.
    :param max_tries: The task instance's current ``max_tries`` (changes only when a user clears it).
    :param stored: The newest run an earlier try of this task instance started, if any.
    :param stored_status: That run's status now (``None`` when it could not be found).
    :param retry_from_failure: Retry a failed previous run from its failed step.
    :param in_flight_run_id: With ``reuse_existing_run``, the newest in-flight run of the job.
    """
    previous = stored if stored is not None and stored.job_id == job_id else None
    if previous is not None and previous.max_tries != max_tries:
        previous = None  # a user cleared the task: they asked for a new run
    if previous is not None and stored_status is not None:
        if not stored_status.is_terminal:
            return RunStartDecision(
                RunStart.ADOPT,
                previous.run_id,
                f"run {previous.run_id} of the previous try is still {stored_status.name.lower()}",
            )
        if stored_status is RunStatus.ERROR and retry_from_failure:
            return RunStartDecision(
                RunStart.RETRY, previous.run_id, f"run {previous.run_id} of the previous try failed"
            )
    if in_flight_run_id is not None:
        return RunStartDecision(
            RunStart.ADOPT, in_flight_run_id, f"run {in_flight_run_id} of job {job_id} is already in flight"
        )
    return RunStartDecision(RunStart.TRIGGER, None, "no run of a previous try to adopt or retry")


# --- the search --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundRun:
    """The newest run of a task instance, as the search found it."""

    run: Run
    mark: RunMark
    marked_run_id: int  # the run carrying the marker; ``run`` is a retry of it when they differ

    def as_stored(self, job_id: int) -> StoredRun:
        return StoredRun(self.run.id, job_id, self.mark.try_number, self.mark.max_tries)


def find_task_run(
    client: DbtCloudClient, job_id: int, ti: TaskInstanceRef, since: datetime | None
) -> FoundRun | None:
    """The newest run of ``job_id`` whose cause carries ``ti``'s token, followed to its latest retry.

    Reads the job's runs newest first, page by page, and stops at the first marked run or at the
    first run created before ``since`` (less :data:`CLOCK_SKEW`).
    """
    floor = since - CLOCK_SKEW if since is not None else None
    seen: dict[int, Run] = {}
    newer: dict[int, int] = {}  # run id -> id of the run retrying it
    for run in client.iter_runs(job_id=job_id, order_by="-id"):
        if run.id in seen:
            continue  # a page shifted by a run created meanwhile
        seen[run.id] = run
        if run.retrying_run_id is not None and run.retrying_run_id != run.id:
            older, younger = sorted((run.id, run.retrying_run_id))
            newer[older] = younger
        mark = RunMark.parse(run.trigger_cause)
        if mark is not None and mark.token == ti.token:
            return FoundRun(_latest_retry(client, run, seen, newer), mark, run.id)
        if floor is not None and run.created_at is not None and run.created_at < floor:
            return None
    return None


def _latest_retry(client: DbtCloudClient, run: Run, seen: dict[int, Run], newer: dict[int, int]) -> Run:
    current, visited = run, {run.id}
    while current.id in newer and newer[current.id] not in visited:
        next_id = newer[current.id]
        visited.add(next_id)
        try:
            current = seen.get(next_id) or client.get_run(next_id)
        except DbtCloudNotFoundError:
            break
        if current.retrying_run_id is not None and current.retrying_run_id > current.id:
            newer.setdefault(current.id, current.retrying_run_id)
    return current


def plan_run_start(
    client: DbtCloudClient,
    *,
    job_id: int,
    ti: TaskInstanceRef,
    stored: StoredRun | None,
    since: datetime | None,
    retry_from_failure: bool,
    reuse_existing_run: bool,
) -> RunStartDecision:
    """Find this task instance's newest run (task state store and cause marker) and decide.

    The first try has no earlier run and reads nothing; later tries search the job's runs (the
    marker survives what the store does not) and take the newer of the two when both name a run.
    """
    candidates: list[tuple[StoredRun, RunStatus | None, str]] = []
    if stored is not None and stored.job_id == job_id:
        candidates.append((stored, _status_of(client, stored.run_id), "the task state store"))
    if ti.try_number > 1:
        found = find_task_run(client, job_id, ti, since)
        if found is not None:
            how = "its cause" if found.run.id == found.marked_run_id else f"run {found.marked_run_id}'s cause"
            candidates.append((found.as_stored(job_id), found.run.status, how))
    previous, status, source = max(candidates, key=lambda c: c[0].run_id, default=(None, None, ""))
    in_flight = _in_flight_run(client, job_id) if reuse_existing_run else None
    decision = decide_run_start(
        job_id=job_id,
        max_tries=ti.max_tries,
        stored=previous,
        stored_status=status,
        retry_from_failure=retry_from_failure,
        in_flight_run_id=in_flight,
    )
    if previous is not None and decision.run_id == previous.run_id:
        return RunStartDecision(decision.action, decision.run_id, f"{decision.reason} (found by {source})")
    return decision


def _status_of(client: DbtCloudClient, run_id: int) -> RunStatus | None:
    try:
        return client.get_run(run_id).status
    except DbtCloudNotFoundError:
        return None  # deleted in dbt Cloud: nothing to adopt


def _in_flight_run(client: DbtCloudClient, job_id: int) -> int | None:
    runs = client.list_runs(job_id=job_id, status=list(_IN_FLIGHT), order_by="-id", limit=1)
    return runs[0].id if runs else None
