"""Options of a job run trigger, validated before anything is sent, and how an operator's
parameters (and the official provider's ``additional_run_config``) become them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_dbt_provider.cloud.coerce import is_deferred, to_int, to_optional_int
from airflow_dbt_provider.cloud.errors import DbtCloudConfigError
from airflow_dbt_provider.text import one_line, shorten

MAX_CAUSE_LENGTH = 255
DEFAULT_CAUSE = "Triggered by Airflow (airflow-dbt-provider)"

_INT_FIELDS = (
    "github_pull_request_id",
    "gitlab_merge_request_id",
    "azure_pull_request_id",
    "non_native_pull_request_id",
    "threads_override",
    "timeout_seconds_override",
)
_STR_FIELDS = ("git_sha", "git_branch", "schema_override", "dbt_version_override", "target_name_override")
_PR_FIELDS = _INT_FIELDS[:4]


@dataclass(frozen=True)
class TriggerRunOptions:
    """Every field the ``Trigger Job Run`` endpoint accepts; only ``cause`` is required.

    ``extra`` is merged into the request body last, for fields dbt Cloud adds after this release;
    it may not repeat a typed field (:func:`merge_run_config` folds such entries of an operator's
    ``additional_run_config`` into the typed fields first, so they are checked like them).
    """

    cause: str = DEFAULT_CAUSE
    git_sha: str | None = None
    git_branch: str | None = None
    github_pull_request_id: int | None = None
    gitlab_merge_request_id: int | None = None
    azure_pull_request_id: int | None = None
    non_native_pull_request_id: int | None = None
    schema_override: str | None = None
    dbt_version_override: str | None = None
    threads_override: int | None = None
    target_name_override: str | None = None
    generate_docs_override: bool | None = None
    timeout_seconds_override: int | None = None
    steps_override: list[str] | None = field(default=None, hash=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            self._check_int(name)
        for name in _STR_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise DbtCloudConfigError(f"{name} must be a non-empty string or None, got {value!r}")
        self._check_cause()
        self._check_steps()
        self._check_rest()

    def _check_int(self, name: str) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise DbtCloudConfigError(f"{name} must be an integer, got {value!r}")
        minimum = 0 if name == "timeout_seconds_override" else 1
        if value < minimum:
            raise DbtCloudConfigError(f"{name} must be at least {minimum}, got {value}")

    def _check_cause(self) -> None:
        if not isinstance(self.cause, str) or not self.cause.strip():
            raise DbtCloudConfigError(
                "cause must be a non-empty string: dbt Cloud shows it as the run's reason"
            )
        if len(self.cause) > MAX_CAUSE_LENGTH:
            raise DbtCloudConfigError(
                f"cause is {len(self.cause)} characters; dbt Cloud accepts at most {MAX_CAUSE_LENGTH}. "
                "Shorten it (or use TriggerRunOptions.with_cause, which truncates)."
            )

    def _check_steps(self) -> None:
        steps = self.steps_override
        if steps is None:
            return
        if isinstance(steps, str) or not isinstance(steps, list | tuple) or not steps:
            raise DbtCloudConfigError(
                f"steps_override must be a non-empty list of dbt commands, e.g. ['dbt build'], got {steps!r}"
            )
        bad = [s for s in steps if not isinstance(s, str) or not s.strip().startswith("dbt ")]
        if bad:
            raise DbtCloudConfigError(
                f"every steps_override entry must be a dbt command starting with 'dbt ': {bad!r}"
            )

    def _check_rest(self) -> None:
        if self.generate_docs_override is not None and not isinstance(self.generate_docs_override, bool):
            raise DbtCloudConfigError(
                f"generate_docs_override must be True, False or None, got {self.generate_docs_override!r}"
            )
        prs = [name for name in _PR_FIELDS if getattr(self, name) is not None]
        if len(prs) > 1:
            raise DbtCloudConfigError(f"give at most one pull/merge request id, got {', '.join(prs)}")
        if not isinstance(self.extra, Mapping):
            raise DbtCloudConfigError(
                f"extra must be a dict of additional trigger fields, got {self.extra!r}"
            )
        typed = {f.name for f in fields(self)} - {"extra"}
        clash = sorted(typed & set(self.extra))
        if clash:
            raise DbtCloudConfigError(f"set {', '.join(clash)} through its own option, not through extra")

    @classmethod
    def with_cause(cls, cause: str, **kwargs: Any) -> TriggerRunOptions:
        """Options whose ``cause`` is truncated to dbt Cloud's 255-character limit."""
        return cls(cause=shorten(one_line(cause) or DEFAULT_CAUSE, MAX_CAUSE_LENGTH), **kwargs)

    def to_api(self) -> dict[str, Any]:
        """The request body: set fields only, so dbt Cloud keeps the job's own defaults."""
        body: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            body[f.name] = list(value) if f.name == "steps_override" else value
        body.update(self.extra)
        return body


#: The trigger fields :class:`TriggerRunOptions` types (``cause`` included), by their API names.
TYPED_FIELDS = frozenset(f.name for f in fields(TriggerRunOptions)) - {"extra"}
#: Those of them that are integers (ids and counts).
INT_FIELDS = frozenset(_INT_FIELDS)


@dataclass(frozen=True)
class RunConfigOverride:
    """An ``additional_run_config`` entry that replaced a field the user also set explicitly."""

    name: str
    explicit: Any
    value: Any


def merge_run_config(
    explicit: Mapping[str, Any], additional: Mapping[str, Any]
) -> tuple[dict[str, Any], list[RunConfigOverride]]:
    """Trigger fields as the official provider's hook builds its body: ``payload.update(additional)``.

    Every ``additional`` entry is sent, and it wins over the explicit field of the same name (the
    override is reported, so the caller can warn naming both). Entries that are typed fields go
    into those fields, so they are validated like the explicit ones; the rest go into ``extra``.
    Returns ``TriggerRunOptions`` keyword arguments (``cause`` included when either side set it).
    """
    merged = {k: v for k, v in explicit.items() if k in TYPED_FIELDS}
    extra: dict[str, Any] = {}
    overrides: list[RunConfigOverride] = []
    for name, value in additional.items():
        if name not in TYPED_FIELDS:
            extra[name] = value
            continue
        current = merged.get(name)
        if current is not None and current != value:
            overrides.append(RunConfigOverride(name, current, value))
        merged[name] = value
    merged["extra"] = extra
    return merged, overrides


#: The operator parameters that are trigger fields, by the operator's names (``trigger_reason`` is
#: the API's ``cause``): ``DbtCloudRunJobOperator`` templates, stores and sends exactly these.
TRIGGER_PARAMETERS: tuple[str, ...] = (
    "trigger_reason",
    *(f.name for f in fields(TriggerRunOptions) if f.name not in {"cause", "extra"}),
)


def api_field(parameter: str) -> str:
    """The API's name of a trigger parameter (``trigger_reason`` is ``cause``)."""
    return "cause" if parameter == "trigger_reason" else parameter


def trigger_fields(
    parameters: Mapping[str, Any], additional_run_config: Any, *, static: bool = False
) -> tuple[dict[str, Any], list[RunConfigOverride]]:
    """``TriggerRunOptions`` keyword arguments from an operator's :data:`TRIGGER_PARAMETERS` (by name)
    updated by its ``additional_run_config`` (:func:`merge_run_config`), and what the update replaced.

    Empty parameters mean not set; integers may be rendered templates (``"8"``). With ``static``
    (at DAG-parse time), values only known at run time (:func:`is_deferred`) count as not set.
    """

    def given(value: Any) -> Any:
        return None if static and is_deferred(value) else value

    explicit: dict[str, Any] = {}
    for parameter, raw in parameters.items():
        name, value = api_field(parameter), given(raw)
        if name in INT_FIELDS:
            explicit[name] = to_optional_int(name, value)
        elif name == "generate_docs_override":
            explicit[name] = value
        elif name == "steps_override":
            explicit[name] = list(value) if value else None
        else:
            explicit[name] = value or None
    config = additional_run_config
    if static and is_deferred(config):
        config = (
            {k: v for k, v in config.items() if not is_deferred(v)} if isinstance(config, Mapping) else {}
        )
    return merge_run_config(explicit, check_run_config(config))


def check_run_config(config: Any) -> dict[str, Any]:
    """``additional_run_config`` as a dict, its typed entries checked under their own name."""
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise ValueError(
            "additional_run_config must be a dict of dbt Cloud trigger fields, e.g. "
            f'{{"threads_override": 8}}, got {config!r}'
        )
    checked = dict(config)
    for name, value in config.items():
        if name not in TYPED_FIELDS or value is None:
            continue
        label = f"additional_run_config[{name!r}]"
        if name in INT_FIELDS:
            value = checked[name] = to_int(label, value)
        try:
            TriggerRunOptions(**{name: value})
        except DbtCloudConfigError as exc:
            text = str(exc)
            raise ValueError(
                label + text[len(name) :] if text.startswith(name) else f"{label}: {text}"
            ) from None
    return checked


def describe_overrides(overrides: list[RunConfigOverride]) -> str:
    """One warning for every explicit parameter ``additional_run_config`` replaced."""
    parts = [
        f"additional_run_config[{o.name!r}]={o.value!r} overrides "
        f"{'trigger_reason' if o.name == 'cause' else o.name}={o.explicit!r}"
        for o in overrides
    ]
    return "; ".join(parts) + " (additional_run_config wins, as in the official provider)"
