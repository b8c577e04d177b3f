"""Request-body and query checks that answer 400 the way dbt Cloud (Django REST framework) does.

Field errors come back as ``{"field": ["message", ...]}`` in ``data``, so a client author sees
exactly which field is wrong. Strict mode enforces the spec's request schemas (required fields,
types, ``minLength``, no ``null`` for non-nullable fields) except where real dbt Cloud is known to
accept more than the spec says (:data:`TRIGGER_NULLABLE`); lenient mode asks only for what the live
service cannot do without. Strictness is about what the emulator answers, never about refusing a
request the real service takes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

JOB_TYPES = ("ci", "scheduled", "other", "merge", "exposure_sync", "adaptive", "hybrid")


class BadRequest(Exception):
    """A 400 answer: ``errors`` maps field names to messages (``non_field_errors`` for the rest)."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def json_body(raw: bytes, *, required: bool) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}`` unless ``required``."""
    if not raw.strip():
        if required:
            raise BadRequest(
                "This endpoint needs a JSON object body.", {"non_field_errors": ["No data provided."]}
            )
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(
            f"The body is not valid JSON: {exc}", {"non_field_errors": ["JSON parse error."]}
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", {"non_field_errors": ["Expected a JSON object."]})
    return data


def _type_error(value: Any, kind: str) -> str | None:
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str) and len(v) >= 1,
        "strs": lambda v: isinstance(v, list) and all(isinstance(i, str) and i for i in v),
        "obj": lambda v: isinstance(v, dict),
    }
    if checks[kind](value):
        return None
    return {
        "int": "A valid integer is required.",
        "bool": "Must be a valid boolean.",
        "str": "Must be a non-empty string.",
        "strs": "Must be a list of non-empty strings.",
        "obj": "Must be a JSON object.",
    }[kind]


def check_fields(
    data: dict[str, Any],
    fields: dict[str, tuple[str, bool]],
    *,
    strict: bool,
    prefix: str = "",
    nullable: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Errors for ``data`` against ``fields`` (name -> (kind, required)); unknown fields are ignored.

    A field in ``nullable`` may be sent as ``null`` (meaning not set) even in strict mode.
    """
    errors: dict[str, list[str]] = {}
    for name, (kind, required) in fields.items():
        key = prefix + name
        if name not in data:
            if required:
                errors[key] = ["This field is required."]
            continue
        value = data[name]
        if value is None:
            if required or (strict and name not in nullable):
                errors[key] = ["This field may not be null."]
            continue
        message = _type_error(value, kind)
        if message:
            errors[key] = [message]
    return errors


TRIGGER_FIELDS: dict[str, tuple[str, bool]] = {
    "cause": ("str", True),
    "git_sha": ("str", False),
    "git_branch": ("str", False),
    "azure_pull_request_id": ("int", False),
    "github_pull_request_id": ("int", False),
    "gitlab_merge_request_id": ("int", False),
    "non_native_pull_request_id": ("int", False),
    "schema_override": ("str", False),
    "dbt_version_override": ("str", False),
    "threads_override": ("int", False),
    "target_name_override": ("str", False),
    "generate_docs_override": ("bool", False),
    "timeout_seconds_override": ("int", False),
    "steps_override": ("strs", False),
}


#: Trigger fields the spec calls non-nullable but real dbt Cloud accepts as ``null`` (not set): the
#: official Airflow provider's ``DbtCloudHook.trigger_job_run`` sends both as ``null`` on every run.
TRIGGER_NULLABLE = frozenset({"steps_override", "schema_override"})


def check_trigger(data: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """Validate a trigger-run body (``cause`` is required in both modes); returns the set fields."""
    errors = check_fields(data, TRIGGER_FIELDS, strict=strict, nullable=TRIGGER_NULLABLE)
    if errors:
        raise BadRequest("The trigger request is invalid.", errors)
    return {k: v for k, v in data.items() if k in TRIGGER_FIELDS and v is not None}


def _job_fields(strict: bool) -> dict[str, tuple[str, bool]]:
    """The spec's HumanReadableJobDefinitionRequest; lenient requires only ids and name."""
    spec_required = strict
    return {
        "account_id": ("int", True),
        "project_id": ("int", True),
        "environment_id": ("int", True),
        "name": ("str", True),
        "state": ("int", spec_required),
        "generate_docs": ("bool", spec_required),
        "run_generate_sources": ("bool", spec_required),
        "errors_on_lint_failure": ("bool", spec_required),
        "lifecycle_webhooks": ("bool", spec_required),
        "run_compare_changes": ("bool", spec_required),
        "run_lint": ("bool", spec_required),
        "execution": ("obj", spec_required),
        "settings": ("obj", spec_required),
        "triggers": ("obj", spec_required),
        "execute_steps": ("strs", False),
        "description": ("str", False),
        "dbt_version": ("str", False),
        "compare_changes_flags": ("str", False),
        "deferring_environment_id": ("int", False),
        "deferring_job_definition_id": ("int", False),
        "schedule": ("obj", False),
        "generate_sources": ("bool", False),
        "triggers_on_draft_pr": ("bool", False),
        "job_type": ("str", False),
    }


def check_job(data: dict[str, Any], *, strict: bool) -> None:
    """Validate a create-job body, nested objects included; raises :class:`BadRequest`."""
    errors = check_fields(data, _job_fields(strict), strict=strict)
    nested = {
        "execution": {"timeout_seconds": ("int", True)},
        "settings": {"target_name": ("str", True), "threads": ("int", True)},
        "triggers": {"github_webhook": ("bool", True), "schedule": ("bool", True)},
    }
    for name, fields in nested.items():
        if isinstance(data.get(name), dict):
            errors.update(check_fields(data[name], fields, strict=strict, prefix=f"{name}."))
    if data.get("job_type") is not None and data.get("job_type") not in JOB_TYPES:
        errors["job_type"] = [f'"{data["job_type"]}" is not a valid choice; use one of {list(JOB_TYPES)}.']
    if data.get("execute_steps") == []:
        errors["execute_steps"] = ['List at least one dbt command, e.g. "dbt build".']
    if errors:
        raise BadRequest("The job definition is invalid.", errors)


def int_param(query: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise BadRequest(
            f"Query parameter {name} must be an integer.", {name: ["A valid integer is required."]}
        ) from None


def int_list_param(query: dict[str, list[str]], name: str) -> list[int] | None:
    """A list filter given as repeated params, ``1,2``, or ``[1,2]`` (clients use all three)."""
    values = query.get(name)
    if not values:
        return None
    items: list[int] = []
    for value in values:
        for part in value.strip("[]").split(","):
            part = part.strip()
            if not part:
                continue
            try:
                items.append(int(part))
            except ValueError:
                raise BadRequest(
                    f"Query parameter {name} must list integers.", {name: [f"{part!r} is not an integer."]}
                ) from None
    return items


def page_params(query: dict[str, list[str]]) -> tuple[int, int]:
    """``limit`` (1-100, default 100) and ``offset`` (>= 0, default 0)."""
    limit = int_param(query, "limit", 100)
    offset = int_param(query, "offset", 0)
    if limit is None or not 1 <= limit <= 100:
        raise BadRequest(
            "limit must be between 1 and 100.", {"limit": ["Ensure this value is between 1 and 100."]}
        )
    if offset is None or offset < 0:
        raise BadRequest(
            "offset must be >= 0.", {"offset": ["Ensure this value is greater than or equal to 0."]}
        )
    return limit, offset


def datetime_range_param(query: dict[str, list[str]], name: str) -> tuple[float, float] | None:
    """A ``*__range`` filter (two RFC 3339 date-times, bounds included) as epoch seconds.

    The spec types it as an array of date-times without saying how it is spelled in a query, so the
    spellings clients use for ``status__in`` are accepted: repeated, ``a,b`` or ``["a","b"]``.
    """
    values = query.get(name)
    if not values:
        return None
    parts: list[str] = []
    for value in values:
        text = value.strip()
        try:
            decoded = json.loads(text) if text.startswith("[") else None
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            parts.extend(str(v) for v in decoded)
        else:
            parts.extend(p for p in text.strip("[]").split(",") if p.strip())
    error = BadRequest(
        f"Query parameter {name} must be two date-times, e.g. "
        f'{name}=["2026-01-01T00:00:00Z","2026-01-02T00:00:00Z"].',
        {name: [f"Expected two ISO 8601 date-times, got {values!r}."]},
    )
    if len(parts) != 2:
        raise error
    bounds: list[float] = []
    for part in parts:
        try:
            moment = dt.datetime.fromisoformat(part.strip().strip("'\"").replace("Z", "+00:00"))
        except ValueError:
            raise error from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        bounds.append(moment.timestamp())
    return bounds[0], bounds[1]
