"""The emulator's live state: the seeded world, jobs created through the API, and runs.

A run stores only *when* it was created (and cancelled) in emulated seconds plus its script; its
status, timestamps and step progress are derived on demand by :func:`progress`. Every mutation and
read happens under one lock, because the server thread and the test thread (``reset()``,
``inject_fault()``) share the state.
"""

from __future__ import annotations

import hmac
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_dbt_provider.testing.dbt_cloud_emulator.clock import EmulatedClock
from airflow_dbt_provider.testing.dbt_cloud_emulator.config import (
    RUN_STATUSES,
    AccountSpec,
    EnvironmentSpec,
    JobSpec,
    ProjectSpec,
    RunScript,
    StepScript,
    WorldConfig,
)

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
TERMINAL = frozenset({SUCCESS, ERROR, CANCELLED})
STATUS_NAMES = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
FIRST_RUN_ID = 70000001


@dataclass(frozen=True)
class World:
    """Ids and names of the seeded world's first account, project, environment, and its jobs by key."""

    account_id: int
    project_id: int
    environment_id: int
    project_name: str
    environment_name: str
    job_ids: dict[str, int]
    job_names: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "project_id": self.project_id,
            "environment_id": self.environment_id,
            "project_name": self.project_name,
            "environment_name": self.environment_name,
            "job_ids": dict(self.job_ids),
            "job_names": dict(self.job_names),
        }


@dataclass
class Job:
    spec: JobSpec
    account_id: int
    project_id: int
    environment_id: int
    created_at: float  # wall-clock epoch seconds
    updated_at: float
    state: int = 1
    runs_started: int = 0
    # Fields a client sent on create that the emulator echoes back (schedule, triggers, ...).
    body: dict[str, Any] = field(default_factory=dict)

    def next_script(self) -> RunScript:
        """The script for the job's next run: scripts are used in order and the last one repeats."""
        script = self.spec.runs[min(self.runs_started, len(self.spec.runs) - 1)]
        self.runs_started += 1
        return script


@dataclass
class Run:
    id: int
    job: Job
    trigger_id: int
    cause: str
    cause_category: str
    created: float  # emulated seconds
    script: RunScript
    overrides: dict[str, Any]
    cancelled: float | None = None
    retry_of: int | None = None


@dataclass(frozen=True)
class StepProgress:
    index: int
    script: StepScript
    status: int
    started: float
    finished: float | None
    log_fraction: float


@dataclass(frozen=True)
class RunProgress:
    """A run as of one instant: everything the API reports about it, in emulated seconds."""

    status: int
    dequeued: float | None
    started: float | None
    finished: float | None
    steps: tuple[StepProgress, ...]

    @property
    def is_complete(self) -> bool:
        return self.status in TERMINAL


def _timeline(run: Run) -> tuple[float, float, list[tuple[StepScript, float, float]], float]:
    """(dequeued, started, [(step, start, end)], natural end) for the run had nobody cancelled it."""
    script = run.script
    dequeued = run.created + script.queued_seconds
    started = dequeued + script.starting_seconds
    spans, t = [], started
    for step in script.steps:
        spans.append((step, t, t + step.duration_seconds))
        t += step.duration_seconds
        if step.status == "error":
            break
    return dequeued, started, spans, t


def progress(run: Run, now: float) -> RunProgress:
    """Where ``run`` is at emulated time ``now``: status, timestamps reached so far, step states."""
    dequeued, started, spans, end = _timeline(run)
    final = RUN_STATUSES[run.script.status]
    stop = end
    if run.cancelled is not None and run.cancelled < end:
        stop, final = run.cancelled, CANCELLED
    horizon = min(now, stop)
    if horizon < dequeued:
        status = QUEUED if now < stop else final
        return RunProgress(status, None, None, stop if now >= stop else None, ())
    if horizon < started:
        status = STARTING if now < stop else final
        return RunProgress(status, dequeued, None, stop if now >= stop else None, ())
    steps = []
    for index, (step, s_start, s_end) in enumerate(spans, start=1):
        if s_start > horizon or (s_start == horizon and now >= stop and s_start < s_end):
            break
        duration = s_end - s_start
        fraction = 1.0 if duration <= 0 else min(1.0, (horizon - s_start) / duration)
        if horizon >= s_end:
            step_status = SUCCESS if step.status == "success" else ERROR
            steps.append(StepProgress(index, step, step_status, s_start, s_end, 1.0))
        elif now >= stop:  # cancelled mid-step
            steps.append(StepProgress(index, step, CANCELLED, s_start, stop, fraction))
        else:
            steps.append(StepProgress(index, step, RUNNING, s_start, None, fraction))
    if now >= stop:
        return RunProgress(final, dequeued, started, stop, tuple(steps))
    return RunProgress(RUNNING, dequeued, started, None, tuple(steps))


def partial_log(text: str, fraction: float) -> str:
    """The first ``fraction`` of a step's log lines, so a running step's log grows like a live one."""
    if fraction >= 1.0:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(lines[: math.floor(len(lines) * fraction)])


class State:
    """Everything the API can see or change, rebuilt from the config by :meth:`reset`."""

    def __init__(
        self, config: WorldConfig, clock: EmulatedClock, token: str, wall: Callable[[], float]
    ) -> None:
        self.config = config
        self.clock = clock
        self.token = token
        self._wall = wall
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            now = self._wall()
            self.accounts: dict[int, AccountSpec] = {a.id: a for a in self.config.accounts}
            self.projects: dict[int, tuple[ProjectSpec, int]] = {}
            self.environments: dict[int, tuple[EnvironmentSpec, int, int]] = {}
            self.jobs: dict[int, Job] = {}
            for account in self.config.accounts:
                for project in account.projects:
                    self.projects[project.id] = (project, account.id)
                    for env in project.environments:
                        self.environments[env.id] = (env, project.id, account.id)
                        for spec in env.jobs:
                            self.jobs[spec.id] = Job(spec, account.id, project.id, env.id, now, now)
            self.runs: dict[int, Run] = {}
            self._run_ids = itertools.count(FIRST_RUN_ID)
            self._trigger_ids = itertools.count(FIRST_RUN_ID * 2)
            self._job_ids = itertools.count(max([*self.jobs, 40000]) + 1)
            self.created_at = now

    def world(self) -> World:
        """The ids a test or user needs: the first account/project/environment and jobs by key."""
        account = self.config.accounts[0]
        project = account.projects[0] if account.projects else None
        env = project.environments[0] if project and project.environments else None
        jobs = [j for a in self.config.accounts for p in a.projects for e in p.environments for j in e.jobs]
        return World(
            account_id=account.id,
            project_id=project.id if project else 0,
            environment_id=env.id if env else 0,
            project_name=project.name if project else "",
            environment_name=env.name if env else "",
            job_ids={j.key: j.id for j in jobs if j.key},
            job_names={j.key: j.name for j in jobs if j.key},
        )

    # ------------------------------------------------------------------------------------- auth
    def token_accounts(self, token: str) -> frozenset[int] | None:
        """Accounts ``token`` may see (None: all); raises KeyError for a token nobody issued."""
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        for spec in self.config.tokens:
            if hmac.compare_digest(token.encode(), spec.token.encode()):
                return spec.accounts
        raise KeyError("unknown token")

    # ------------------------------------------------------------------------------------- runs
    def create_job(self, account_id: int, spec: JobSpec, body: dict[str, Any]) -> Job:
        with self.lock:
            spec.id = next(self._job_ids)
            env = self.environments[int(body["environment_id"])]
            now = self._wall()
            job = Job(spec, account_id, env[1], env[0].id, now, now, body=body)
            self.jobs[spec.id] = job
            return job

    def start_run(
        self, job: Job, cause: str, category: str, overrides: dict[str, Any], retry_of: int | None = None
    ) -> Run:
        with self.lock:
            run = Run(
                id=next(self._run_ids),
                job=job,
                trigger_id=next(self._trigger_ids),
                cause=cause,
                cause_category=category,
                created=self.clock.now(),
                script=job.next_script(),
                overrides=overrides,
                retry_of=retry_of,
            )
            self.runs[run.id] = run
            return run

    def cancel(self, run: Run) -> None:
        with self.lock:
            now = self.clock.now()
            if not progress(run, now).is_complete:
                run.cancelled = now

    def latest_run(self, job: Job) -> Run | None:
        runs = [r for r in self.runs.values() if r.job is job]
        return max(runs, key=lambda r: r.id) if runs else None
