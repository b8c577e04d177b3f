"""The emulator's world: accounts, projects, environments and jobs, and how each job's runs go.

A world is described in JSON (``--config FILE`` or ``DbtCloudEmulator(config=...)``), nested the
way dbt Cloud owns things: accounts hold projects, projects hold environments, environments hold
jobs. Each job scripts its runs — how long they queue, start and run, which steps they run with what
log text and artifacts, and whether they end in success, error or cancellation — so a test can drive
any outcome. Without a config the emulator seeds :func:`default_config`. ``docs/emulator.md``
documents the format; :func:`parse_config` turns bad input into a :class:`ConfigError` that names
the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_dbt_provider.testing.dbt_cloud_emulator.artifacts import ArtifactSource, builtin_log

RUN_STATUSES = {"success": 10, "error": 20, "cancelled": 30}
STEP_STATUSES = {"success": 10, "error": 20}


class ConfigError(ValueError):
    """The world config is invalid; the message says which field and how to fix it."""


@dataclass(frozen=True)
class StepScript:
    """One run step: a name (as dbt Cloud shows it), how long it runs, its outcome, logs, artifacts."""

    name: str
    duration_seconds: float
    status: str = "success"
    logs: str = ""
    debug_logs: str = ""
    artifacts: Mapping[str, ArtifactSource] = field(default_factory=dict)


@dataclass(frozen=True)
class RunScript:
    """How one run of a job goes: seconds spent per status, its steps, and its final status."""

    steps: tuple[StepScript, ...]
    status: str = "success"
    queued_seconds: float = 1.0
    starting_seconds: float = 1.0
    status_message: str | None = None


@dataclass
class JobSpec:
    id: int
    name: str
    execute_steps: list[str]
    runs: list[RunScript]
    key: str | None = None
    description: str = ""
    generate_docs: bool = False
    threads: int = 4
    target_name: str = "default"
    timeout_seconds: int = 0
    job_type: str = "other"
    cron: str = "0 * * * *"
    dbt_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnvironmentSpec:
    id: int
    name: str
    jobs: list[JobSpec]
    dbt_version: str = "latest"
    deployment_type: str | None = "production"
    type: str = "deployment"


@dataclass
class ProjectSpec:
    id: int
    name: str
    environments: list[EnvironmentSpec]
    description: str = ""


@dataclass
class AccountSpec:
    id: int
    name: str
    projects: list[ProjectSpec]
    plan: str = "enterprise"


@dataclass(frozen=True)
class TokenSpec:
    """An accepted API token; ``accounts`` None means every account."""

    token: str
    accounts: frozenset[int] | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"TokenSpec(token='***', accounts={sorted(self.accounts) if self.accounts else None})"


@dataclass
class WorldConfig:
    accounts: list[AccountSpec]
    tokens: list[TokenSpec]


# ---------------------------------------------------------------------------------------------- parsing


class _Ids:
    """Hands out ids to entities the config leaves unnumbered, never reusing one it numbered."""

    def __init__(self, start: int) -> None:
        self.next = start
        self.used: set[int] = set()

    def take(self, wanted: Any, where: str) -> int:
        if wanted is None:
            while self.next in self.used:
                self.next += 1
            wanted = self.next
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted <= 0:
            raise ConfigError(f"{where}.id must be a positive integer, got {wanted!r}")
        if wanted in self.used:
            raise ConfigError(f"{where}.id {wanted} is used twice; ids must be unique per kind")
        self.used.add(wanted)
        return wanted


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a JSON array, got {type(value).__name__}")
    return value


def _str(data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (not value and default is None):
        raise ConfigError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


def _number(data: dict[str, Any], key: str, where: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{key} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _choice(data: dict[str, Any], key: str, where: str, choices: Mapping[str, int], default: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise ConfigError(f"{where}.{key} must be one of {sorted(choices)}, got {value!r}")
    return str(value)


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _parse_step(data: Any, where: str, base: Path | None) -> StepScript:
    data = _obj(data, where)
    _check_keys(data, {"name", "duration_seconds", "status", "logs", "debug_logs", "artifacts"}, where)
    artifacts_raw = _obj(data.get("artifacts", {}), f"{where}.artifacts")
    artifacts = {
        name: ArtifactSource.parse(spec, f"{where}.artifacts[{name!r}]", base, ConfigError)
        for name, spec in artifacts_raw.items()
    }
    logs = data.get("logs", "")
    debug_logs = data.get("debug_logs", "")
    if not isinstance(logs, str) or not isinstance(debug_logs, str):
        raise ConfigError(f"{where}.logs and {where}.debug_logs must be strings")
    return StepScript(
        name=_str(data, "name", where),
        duration_seconds=_number(data, "duration_seconds", where, 1.0),
        status=_choice(data, "status", where, STEP_STATUSES, "success"),
        logs=logs,
        debug_logs=debug_logs,
        artifacts=artifacts,
    )


def _parse_run(data: Any, where: str, execute_steps: list[str], base: Path | None) -> RunScript:
    data = _obj(data, where)
    allowed = {"status", "queued_seconds", "starting_seconds", "steps", "status_message"}
    _check_keys(data, allowed, where)
    status = _choice(data, "status", where, RUN_STATUSES, "success")
    if "steps" in data:
        steps_raw = _list(data["steps"], f"{where}.steps")
        steps = tuple(_parse_step(s, f"{where}.steps[{i}]", base) for i, s in enumerate(steps_raw))
    else:
        steps = default_steps(execute_steps, status)
    if not steps:
        raise ConfigError(f"{where}.steps must list at least one step")
    failing = [s for s in steps if s.status == "error"]
    if status == "error" and not failing:
        raise ConfigError(f'{where}: status "error" needs a step with "status": "error" (the one that fails)')
    if status != "error" and failing:
        raise ConfigError(f'{where}: a step has "status": "error" but the run\'s status is {status!r}')
    message = data.get("status_message")
    if message is not None and not isinstance(message, str):
        raise ConfigError(f"{where}.status_message must be a string")
    return RunScript(
        steps=steps,
        status=status,
        queued_seconds=_number(data, "queued_seconds", where, 1.0),
        starting_seconds=_number(data, "starting_seconds", where, 1.0),
        status_message=message,
    )


def default_steps(execute_steps: list[str], status: str = "success") -> tuple[StepScript, ...]:
    """Steps like dbt Cloud's for a job without scripted steps: setup, then one per command, 1 s each."""
    steps = [
        StepScript("Clone git repository", 0.5, logs="Cloning into 'repo'...\nChecked out at main.\n"),
        StepScript("Create profile from connection Emulated", 0.5, logs="Profile written.\n"),
    ]
    for i, command in enumerate(execute_steps):
        fails = status == "error" and i == len(execute_steps) - 1
        steps.append(
            StepScript(
                f"Invoke dbt with `{command}`",
                1.0,
                status="error" if fails else "success",
                logs=f"Running `{command}` in the dbt Cloud emulator.\n"
                + ("Completed with 1 error.\n" if fails else "Completed successfully.\n"),
            )
        )
    return tuple(steps)


def _parse_job(data: Any, where: str, ids: _Ids, base: Path | None) -> JobSpec:
    data = _obj(data, where)
    allowed = {
        "id", "key", "name", "execute_steps", "runs", "description", "generate_docs", "threads",
        "target_name", "timeout_seconds", "job_type", "cron", "dbt_version",
    }  # fmt: skip
    _check_keys(data, allowed, where)
    execute_steps = _list(data.get("execute_steps", ["dbt build"]), f"{where}.execute_steps")
    if not execute_steps or not all(isinstance(s, str) and s.strip() for s in execute_steps):
        raise ConfigError(f'{where}.execute_steps must be a non-empty list of dbt commands like "dbt build"')
    runs_raw = _list(data.get("runs", [{}]), f"{where}.runs")
    if not runs_raw:
        raise ConfigError(f"{where}.runs must script at least one run (the last one repeats)")
    runs = [_parse_run(r, f"{where}.runs[{i}]", execute_steps, base) for i, r in enumerate(runs_raw)]
    key = data.get("key")
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"{where}.key must be a string")
    threads = data.get("threads", 4)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{where}.threads must be a positive integer")
    return JobSpec(
        id=ids.take(data.get("id"), where),
        key=key,
        name=_str(data, "name", where),
        execute_steps=list(execute_steps),
        runs=runs,
        description=_str(data, "description", where, ""),
        generate_docs=bool(data.get("generate_docs", False)),
        threads=threads,
        target_name=_str(data, "target_name", where, "default"),
        timeout_seconds=int(_number(data, "timeout_seconds", where, 0)),
        job_type=_str(data, "job_type", where, "other"),
        cron=_str(data, "cron", where, "0 * * * *"),
        dbt_version=data.get("dbt_version"),
    )


def parse_config(raw: Any, base: Path | None = None) -> WorldConfig:
    """Validate a JSON world config and return it typed; ``base`` resolves relative artifact files."""
    data = _obj(raw, "config")
    _check_keys(data, {"accounts", "tokens"}, "config")
    ids = {kind: _Ids(start) for kind, start in _ID_STARTS.items()}
    accounts = []
    for a, acc in enumerate(_list(data.get("accounts", []), "config.accounts")):
        where = f"accounts[{a}]"
        acc = _obj(acc, where)
        _check_keys(acc, {"id", "name", "plan", "projects"}, where)
        projects = []
        for p, proj in enumerate(_list(acc.get("projects", []), f"{where}.projects")):
            pwhere = f"{where}.projects[{p}]"
            proj = _obj(proj, pwhere)
            _check_keys(proj, {"id", "name", "description", "environments"}, pwhere)
            envs = []
            for e, env in enumerate(_list(proj.get("environments", []), f"{pwhere}.environments")):
                ewhere = f"{pwhere}.environments[{e}]"
                env = _obj(env, ewhere)
                _check_keys(env, {"id", "name", "dbt_version", "deployment_type", "type", "jobs"}, ewhere)
                jobs_raw = _list(env.get("jobs", []), f"{ewhere}.jobs")
                env_id = ids["environment"].take(env.get("id"), ewhere)
                jobs = [
                    _parse_job(j, f"{ewhere}.jobs[{i}]", ids["job"], base) for i, j in enumerate(jobs_raw)
                ]
                deployment_type = env.get("deployment_type", "production")
                if deployment_type not in ("production", "staging", None):
                    raise ConfigError(f'{ewhere}.deployment_type must be "production", "staging" or null')
                env_type = env.get("type", "deployment")
                if env_type not in ("deployment", "development"):
                    raise ConfigError(f'{ewhere}.type must be "deployment" or "development"')
                envs.append(
                    EnvironmentSpec(
                        id=env_id,
                        name=_str(env, "name", ewhere),
                        jobs=jobs,
                        dbt_version=_str(env, "dbt_version", ewhere, "latest"),
                        deployment_type=deployment_type,
                        type=env_type,
                    )
                )
            projects.append(
                ProjectSpec(
                    id=ids["project"].take(proj.get("id"), pwhere),
                    name=_str(proj, "name", pwhere),
                    environments=envs,
                    description=_str(proj, "description", pwhere, ""),
                )
            )
        accounts.append(
            AccountSpec(
                id=ids["account"].take(acc.get("id"), where),
                name=_str(acc, "name", where),
                projects=projects,
                plan=_str(acc, "plan", where, "enterprise"),
            )
        )
    if not accounts:
        raise ConfigError("config.accounts must list at least one account")
    keys = [j.key for a in accounts for p in a.projects for e in p.environments for j in e.jobs if j.key]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"job keys must be unique, got {sorted(keys)}")
    return WorldConfig(accounts=accounts, tokens=_parse_tokens(data.get("tokens", []), accounts))


def _parse_tokens(raw: Any, accounts: list[AccountSpec]) -> list[TokenSpec]:
    known = {a.id for a in accounts}
    tokens = []
    for i, item in enumerate(_list(raw, "config.tokens")):
        where = f"config.tokens[{i}]"
        if isinstance(item, str) and item:
            tokens.append(TokenSpec(item))
            continue
        item = _obj(item, where)
        _check_keys(item, {"token", "accounts"}, where)
        scope = item.get("accounts")
        if scope is not None:
            scope_list = _list(scope, f"{where}.accounts")
            unknown = sorted(set(scope_list) - known)
            if unknown:
                raise ConfigError(f"{where}.accounts names unknown account id(s) {unknown}")
            tokens.append(TokenSpec(_str(item, "token", where), frozenset(scope_list)))
        else:
            tokens.append(TokenSpec(_str(item, "token", where)))
    return tokens


def load_config(config: Mapping[str, Any] | str | Path | None) -> WorldConfig:
    """Load a world from a dict, a JSON file path, or None for the documented default world."""
    if config is None:
        return parse_config(default_config())
    if isinstance(config, str | Path):
        path = Path(config)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        return parse_config(raw, base=path.resolve().parent)
    return parse_config(dict(config))


# Ids start in different ranges per kind so a client that passes a job id where a run id belongs
# gets a 404 instead of silently hitting another object.
_ID_STARTS = {"account": 10001, "project": 20001, "environment": 30001, "job": 40001}
DEFAULT_PROJECT = "jaffle_shop"
DEFAULT_ENVIRONMENT = "Production"
FAIL_MESSAGE = "Failure in test assert_order_amount_not_negative"


def _builtin_steps(outcome: str, build_seconds: float) -> list[dict[str, Any]]:
    """The default world's steps: setup, ``dbt deps``, then ``dbt build`` with real dbt artifacts."""
    build_status = "success" if outcome == "success" else "error"
    return [
        {
            "name": "Clone git repository",
            "duration_seconds": 1.0,
            "logs": "Cloning into '/tmp/jobs/repo'...\nChecked out at main.\n",
        },
        {
            "name": "Create profile from connection DuckDB",
            "duration_seconds": 0.5,
            "logs": "Writing profile jaffle_shop for target dev (duckdb).\n",
        },
        {
            "name": "Invoke dbt with `dbt deps`",
            "duration_seconds": 1.0,
            "logs": "Installing ../jaffle_utils\nInstalled from <local @ ../jaffle_utils>\n",
        },
        {
            "name": "Invoke dbt with `dbt build`",
            "duration_seconds": build_seconds,
            "status": build_status,
            "logs": builtin_log(outcome),
            "artifacts": {
                "manifest.json": {"builtin": f"{outcome}/manifest.json"},
                "run_results.json": {"builtin": f"{outcome}/run_results.json"},
            },
        },
    ]


def default_config() -> dict[str, Any]:
    """The documented default world (docs/emulator.md): one account, project, environment, 3 jobs."""
    return {
        "tokens": [],
        "accounts": [
            {
                "name": "Emulated Analytics",
                "projects": [
                    {
                        "name": DEFAULT_PROJECT,
                        "description": "The provider's DuckDB example project.",
                        "environments": [
                            {
                                "name": DEFAULT_ENVIRONMENT,
                                "deployment_type": "production",
                                "jobs": [
                                    {
                                        "key": "success",
                                        "name": "jaffle_shop build",
                                        "execute_steps": ["dbt deps", "dbt build"],
                                        "runs": [{"steps": _builtin_steps("success", 4.0)}],
                                    },
                                    {
                                        "key": "fail",
                                        "name": "jaffle_shop build with a failing test",
                                        "execute_steps": ["dbt deps", "dbt build"],
                                        "runs": [
                                            {
                                                "status": "error",
                                                "steps": _builtin_steps("fail", 4.0),
                                                "status_message": FAIL_MESSAGE,
                                            }
                                        ],
                                    },
                                    {
                                        "key": "long",
                                        "name": "jaffle_shop long build",
                                        "execute_steps": ["dbt deps", "dbt build"],
                                        "runs": [{"steps": _builtin_steps("success", 600.0)}],
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
