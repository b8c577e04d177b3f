"""What differs across the dbt-core versions we support (1.8 to 1.12), each fact stated once.

Why a table, checked before dbt runs: dbt's ``dbtRunner.invoke(args, **kwargs)`` answers an option
it does not know on the command line with a terse click usage error, and — worse — silently drops an
unknown *keyword* parameter (``dbt_flags={"sample": "3 days"}`` on dbt-core 1.9 would build every
row). :func:`check_params` turns both into an error naming the dbt-core version that has the option.

The table was measured, not guessed: ``scripts/dbt_cli_surface.py`` dumps every command's click
parameters for the installed dbt-core, and each minor's dump was compared (dbt-core 1.8.10, 1.9.11,
1.10.23, 1.11.16, 1.12.6). All commands the operators use exist in every supported version. The
rest of the surface the package reads is the same in each of them (checked by running the core
suites on each minor, see ``make test-matrix``): ``EventMsg.info.{name,level,msg}`` of dbt's
events, ``dbtRunnerResult.{success,exception,result}``, and ``RunExecutionResult.results`` items'
``node``/``status``/``timing``/``adapter_response``/``message``/``failures``.

Behaviour flags (``flags:`` in ``dbt_project.yml``) are the project's: the runner sets none, so each
dbt-core minor applies its own defaults. Project syntax is where versions part: YAML snapshots need
1.9 and generic-test ``arguments:`` 1.10, so the bundled example project uses SQL snapshot blocks and
plain test arguments, which every supported version parses (1.10+ logs a deprecation for the latter).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import metadata

from airflow_dbt_provider.core.errors import DbtConfigurationError

#: Every command (a parameter of dbt's global options).
ALL = None
Minor = tuple[int, int]

#: Commands that compile SQL (the ones ``--sqlparse`` reached).
_SQL_COMMANDS = frozenset(
    {"build", "compile", "docs generate", "run", "seed", "show", "snapshot", "source freshness", "test"}
)
#: dbt parameter name -> (the dbt-core minor that added it, the commands that take it or ``ALL``).
ADDED: dict[str, tuple[Minor, frozenset[str] | None]] = {
    # microbatch incremental models: rebuild one window of batches
    "event_time_start": ((1, 9), frozenset({"build", "run"})),
    "event_time_end": ((1, 9), frozenset({"build", "run"})),
    "inline_direct": ((1, 9), frozenset({"show"})),
    "resource_types": ((1, 9), frozenset({"test"})),  # build/list had it before 1.8
    "exclude_resource_types": ((1, 9), frozenset({"test"})),
    # sample mode: build models on a time-based sample of their inputs
    "sample": ((1, 10), frozenset({"build", "run"})),
    "show_all_deprecations": ((1, 10), ALL),
    "use_fast_test_edges": ((1, 10), ALL),
    "upload_to_artifacts_ingest_api": ((1, 10), ALL),
    "sqlparse": (
        (1, 11),
        frozenset(
            {
                "build",
                "compile",
                "docs generate",
                "run",
                "seed",
                "show",
                "snapshot",
                "source freshness",
                "test",
            }
        ),
    ),
    "sql": ((1, 12), frozenset({"run-operation"})),
    "skip_debug": ((1, 12), frozenset({"init"})),
    "hints_enabled": ((1, 12), ALL),
    "maximum_seed_size_mib": ((1, 12), ALL),
    "use_v2_parser": ((1, 12), ALL),
}
#: ``--empty`` reached more commands over time (``build``/``run`` had it in 1.8).
EMPTY_SINCE: dict[str, Minor] = {"snapshot": (1, 9), "seed": (1, 12)}
#: dbt parameter name -> the dbt-core minor that removed it.
REMOVED: dict[str, Minor] = {"enable_legacy_logger": (1, 9)}
#: The oldest dbt-core the package supports (pyproject's floor).
OLDEST: Minor = (1, 8)


@cache
def installed_minor() -> Minor | None:
    """``(major, minor)`` of the installed dbt-core, or ``None`` when it is not installed."""
    try:
        parts = metadata.version("dbt-core").split(".")
        return int(parts[0]), int(parts[1])
    except (metadata.PackageNotFoundError, ValueError, IndexError):
        return None


def option_names(argv: Iterable[str]) -> list[str]:
    """dbt parameter names of the ``--options`` in ``argv`` (``--no-x`` names ``x``)."""
    names = []
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            continue
        name = arg[2:].split("=", 1)[0].replace("-", "_")
        names.append(name[3:] if name.startswith("no_") and name[3:] in _KNOWN else name)
    return names


def check_params(
    command: str, argv: Iterable[str], params: Iterable[str], *, version: Minor | None = None
) -> None:
    """Raise :class:`DbtConfigurationError` for an option this dbt-core does not have yet (or any more).

    ``argv`` are CLI words, ``params`` keyword parameter names; ``version`` defaults to the installed.
    """
    version = version or installed_minor()
    if version is None:
        return
    for name in dict.fromkeys([*option_names(argv), *params]):
        needed = _needs(command, name)
        if needed is not None and version < needed:
            raise DbtConfigurationError(
                f"dbt {command} {_flag(name)} needs dbt-core {_dotted(needed)} or later; this "
                f"environment has dbt-core {_dotted(version)}. Upgrade dbt-core (and its adapter) "
                f"to {_dotted(needed)}+, or remove {name!r} from the operator's arguments/dbt_flags."
            )
        removed = REMOVED.get(name)
        if removed is not None and version >= removed:
            raise DbtConfigurationError(
                f"dbt {command} {_flag(name)} was removed in dbt-core {_dotted(removed)} (this "
                f"environment has {_dotted(version)}); remove {name!r} from the operator's arguments."
            )


def _needs(command: str, name: str) -> Minor | None:
    if name == "empty":
        return EMPTY_SINCE.get(command)
    added = ADDED.get(name)
    if added is None:
        return None
    since, commands = added
    return since if commands is ALL or command in commands else None


_KNOWN = frozenset({*ADDED, *REMOVED, "empty"})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dotted(minor: Minor) -> str:
    return f"{minor[0]}.{minor[1]}"
