"""Typed, read-only views of dbt Cloud API objects.

The live API does not keep to its own specification: it sends ``null`` for fields declared as plain
strings or integers, leaves relations out, sends ids as strings in some list endpoints and timestamps
either as ISO strings (with a space or a ``T``) or as epoch seconds. Parsing is therefore lenient:
unknown fields are ignored, missing or ``null`` fields become ``None`` (or an empty value), and only
the fields callers cannot work without (an object's ``id``) are required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import IntEnum
from typing import Any, ClassVar

import pendulum

from airflow_dbt_provider.cloud.errors import DbtCloudResponseError


class RunStatus(IntEnum):
    """A dbt Cloud run's status code, as the v2 API reports it."""

    QUEUED = 1
    STARTING = 2
    RUNNING = 3
    SUCCESS = 10
    ERROR = 20
    CANCELLED = 30

    #: Statuses a run never leaves: success, error, cancelled.
    TERMINAL: ClassVar[frozenset[RunStatus]]

    @property
    def is_terminal(self) -> bool:
        """True once the run can no longer change: success, error or cancelled."""
        return self in RunStatus.TERMINAL

    @property
    def is_success(self) -> bool:
        return self is RunStatus.SUCCESS

    @classmethod
    def parse(cls, value: Any) -> RunStatus:
        """Read a status from an int, a numeric string or a humanized name (``"Succeeded"``)."""
        if isinstance(value, RunStatus):
            return value
        if isinstance(value, bool) or value is None:
            raise DbtCloudResponseError(f"dbt Cloud sent run status {value!r}, which is not a status code")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            try:
                return cls(int(value))
            except ValueError:
                raise DbtCloudResponseError(
                    f"dbt Cloud sent unknown run status code {value!r}; known codes: "
                    f"{', '.join(f'{s.value} {s.name.lower()}' for s in cls)}"
                ) from None
        name = str(value).strip().lower()
        if name in _STATUS_NAMES:
            return _STATUS_NAMES[name]
        raise DbtCloudResponseError(f"dbt Cloud sent unknown run status {value!r}")


RunStatus.TERMINAL = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED})

_STATUS_NAMES: dict[str, RunStatus] = {
    "queued": RunStatus.QUEUED,
    "starting": RunStatus.STARTING,
    "running": RunStatus.RUNNING,
    "success": RunStatus.SUCCESS,
    "succeeded": RunStatus.SUCCESS,
    "error": RunStatus.ERROR,
    "errored": RunStatus.ERROR,
    "failed": RunStatus.ERROR,
    "cancelled": RunStatus.CANCELLED,
    "canceled": RunStatus.CANCELLED,
}


# --- lenient field readers ---------------------------------------------------------------------


def _int(value: Any) -> int | None:
    """An int from an int or a numeric string; ``None`` for null, empty or non-numeric values."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime (a ``pendulum.DateTime``, as Airflow's own) from the API's text.

    ISO 8601 with a space or ``T``, ``Z`` or an offset, any number of fraction digits, or epoch
    seconds; naive values are taken as UTC, which is what dbt Cloud stores. Anything else: ``None``.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return pendulum.from_timestamp(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lstrip("-").replace(".", "", 1).isdigit():
        return pendulum.from_timestamp(float(text))
    try:
        parsed = pendulum.parse(text, exact=True)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    if isinstance(parsed, datetime):
        return parsed
    if isinstance(parsed, date):  # a bare date: midnight UTC
        return pendulum.datetime(parsed.year, parsed.month, parsed.day)
    return None  # a time of day or a duration is not a timestamp


_HMS = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})(?:\.\d+)?$")


def parse_duration_seconds(value: Any) -> float | None:
    """Seconds from ``"HH:MM:SS"`` (optionally ``"N days, "``-prefixed) or a number of seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        match = _HMS.match(text)
        if match:
            days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            return float(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds())
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _require_id(data: Mapping[str, Any], kind: str) -> int:
    value = _int(data.get("id"))
    if value is None:
        raise DbtCloudResponseError(f"dbt Cloud sent a {kind} without a numeric id: {dict(data)!r:.200}")
    return value


def _sub(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object, or an empty one when the API sent null or left the relation out."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _mapping(data: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise DbtCloudResponseError(
            f"dbt Cloud sent {type(data).__name__} where a {kind} object was expected"
        )
    return data


# --- models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A dbt Cloud account."""

    id: int
    name: str | None = None
    plan: str | None = None
    state: int | None = None
    locked: bool = False
    identifier: str | None = None
    run_slots: int | None = None

    @classmethod
    def from_api(cls, data: Any) -> Account:
        d = _mapping(data, "account")
        return cls(
            id=_require_id(d, "account"),
            name=_str(d.get("name")),
            plan=_str(d.get("plan")),
            state=_int(d.get("state")),
            locked=_bool(d.get("locked")),
            identifier=_str(d.get("identifier")),
            run_slots=_int(d.get("run_slots")),
        )


@dataclass(frozen=True)
class Project:
    """A dbt Cloud project (v3 API)."""

    id: int
    name: str | None = None
    account_id: int | None = None
    description: str | None = None
    state: int | None = None

    @classmethod
    def from_api(cls, data: Any) -> Project:
        d = _mapping(data, "project")
        return cls(
            id=_require_id(d, "project"),
            name=_str(d.get("name")),
            account_id=_int(d.get("account_id")),
            description=_str(d.get("description")),
            state=_int(d.get("state")),
        )


@dataclass(frozen=True)
class Environment:
    """A dbt Cloud environment (development or deployment)."""

    id: int
    name: str | None = None
    account_id: int | None = None
    project_id: int | None = None
    type: str | None = None
    deployment_type: str | None = None
    dbt_version: str | None = None
    state: int | None = None

    @classmethod
    def from_api(cls, data: Any) -> Environment:
        d = _mapping(data, "environment")
        return cls(
            id=_require_id(d, "environment"),
            name=_str(d.get("name")),
            account_id=_int(d.get("account_id")),
            project_id=_int(d.get("project_id")),
            type=_str(d.get("type")),
            deployment_type=_str(d.get("deployment_type")),
            dbt_version=_str(d.get("dbt_version")),
            state=_int(d.get("state")),
        )


@dataclass(frozen=True)
class Job:
    """A dbt Cloud job definition; ``raw`` keeps the full API object for export."""

    id: int
    name: str | None = None
    account_id: int | None = None
    project_id: int | None = None
    environment_id: int | None = None
    description: str | None = None
    dbt_version: str | None = None
    execute_steps: tuple[str, ...] = ()
    state: int | None = None
    job_type: str | None = None
    generate_docs: bool = False
    threads: int | None = None
    target_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def from_api(cls, data: Any) -> Job:
        d = _mapping(data, "job")
        settings = _sub(d, "settings")
        steps = d.get("execute_steps") or ()
        return cls(
            id=_require_id(d, "job"),
            name=_str(d.get("name")),
            account_id=_int(d.get("account_id")),
            project_id=_int(d.get("project_id")),
            environment_id=_int(d.get("environment_id")),
            description=_str(d.get("description")),
            dbt_version=_str(d.get("dbt_version")),
            execute_steps=tuple(str(s) for s in steps) if isinstance(steps, list | tuple) else (),
            state=_int(d.get("state")),
            job_type=_str(d.get("job_type")),
            generate_docs=_bool(d.get("generate_docs")),
            threads=_int(settings.get("threads")),
            target_name=_str(settings.get("target_name")),
            created_at=parse_datetime(d.get("created_at")),
            updated_at=parse_datetime(d.get("updated_at")),
            raw=dict(d),
        )


@dataclass(frozen=True)
class RunStep:
    """One step (one dbt command) of a run, with its high-level logs."""

    id: int | None
    index: int | None
    name: str | None
    status: RunStatus | None
    logs: str | None = None
    truncated_debug_logs: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None

    @classmethod
    def from_api(cls, data: Any) -> RunStep:
        d = _mapping(data, "run step")
        status = d.get("status")
        return cls(
            id=_int(d.get("id")),
            index=_int(d.get("index")),
            name=_str(d.get("name")),
            status=None if status is None else RunStatus.parse(status),
            logs=_str(d.get("logs")),
            truncated_debug_logs=_str(d.get("truncated_debug_logs")),
            started_at=parse_datetime(d.get("started_at")),
            finished_at=parse_datetime(d.get("finished_at")),
            duration_seconds=parse_duration_seconds(d.get("duration")),
        )


#: What ``include_related`` can add to a run.
RUN_RELATIONS = ("trigger", "job", "environment", "repository", "run_steps")


@dataclass(frozen=True)
class Run:
    """A dbt Cloud job run."""

    id: int
    status: RunStatus
    job_id: int | None = None
    account_id: int | None = None
    project_id: int | None = None
    environment_id: int | None = None
    status_message: str | None = None
    href: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    in_progress: bool = False
    is_complete: bool = False
    trigger_cause: str | None = None
    git_branch: str | None = None
    git_sha: str | None = None
    dbt_version: str | None = None
    artifacts_saved: bool = False
    #: The other end of a retry (``POST /runs/{id}/retry/``): the spec names the field, not its
    #: direction, so readers compare ids (the retry is always the newer run).
    retrying_run_id: int | None = None
    run_steps: list[RunStep] = field(default_factory=list, compare=False, hash=False)
    #: Related objects the API sent because they were asked for (``include_related``), as sent.
    related: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def is_success(self) -> bool:
        return self.status is RunStatus.SUCCESS

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @classmethod
    def from_api(cls, data: Any) -> Run:
        d = _mapping(data, "run")
        status = RunStatus.parse(d.get("status"))
        trigger = _sub(d, "trigger")
        started, finished = parse_datetime(d.get("started_at")), parse_datetime(d.get("finished_at"))
        duration = parse_duration_seconds(d.get("duration"))
        if duration is None and started and finished:
            duration = (finished - started).total_seconds()
        steps = d.get("run_steps")
        return cls(
            id=_require_id(d, "run"),
            status=status,
            job_id=_int(d.get("job_definition_id")) or _int(d.get("job_id")),
            account_id=_int(d.get("account_id")),
            project_id=_int(d.get("project_id")),
            environment_id=_int(d.get("environment_id")),
            status_message=_str(d.get("status_message")),
            href=_str(d.get("href")),
            created_at=parse_datetime(d.get("created_at")),
            started_at=started,
            finished_at=finished,
            duration_seconds=duration,
            in_progress=_bool(d.get("in_progress"), default=not status.is_terminal),
            is_complete=_bool(d.get("is_complete"), default=status.is_terminal),
            trigger_cause=_str(trigger.get("cause")),
            git_branch=_str(d.get("git_branch")) or _str(trigger.get("git_branch")),
            git_sha=_str(d.get("git_sha")) or _str(trigger.get("git_sha")),
            dbt_version=_str(d.get("dbt_version")),
            artifacts_saved=_bool(d.get("artifacts_saved")),
            retrying_run_id=_int(d.get("retrying_run_id")),
            run_steps=[RunStep.from_api(s) for s in steps] if isinstance(steps, list) else [],
            related={k: d[k] for k in RUN_RELATIONS if d.get(k) is not None},
        )


@dataclass(frozen=True)
class Artifact:
    """A file a run step produced (``manifest.json``, ``run_results.json``, ...)."""

    path: str
    run_id: int | None = None
    step: int | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @classmethod
    def from_api(cls, data: Any, *, run_id: int | None = None, step: int | None = None) -> Artifact:
        """From an entry of the list-artifacts answer: a path string (or an object with ``path``)."""
        if isinstance(data, Mapping):
            data = data.get("path") or data.get("name")
        if not isinstance(data, str) or not data:
            raise DbtCloudResponseError(f"dbt Cloud sent artifact entry {data!r}, expected a file path")
        return cls(path=data, run_id=run_id, step=step)
