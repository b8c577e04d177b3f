"""The dbt-core version table (core/dbt_versions.py) against the installed dbt, and its errors.

The table test runs on whatever dbt-core the venv holds, so each lane of ``make test-matrix``
checks the table against that minor's real CLI.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from airflow_dbt_provider.core import DbtConfigurationError, DbtRunner
from airflow_dbt_provider.core.dbt_versions import (
    ADDED,
    ALL,
    EMPTY_SINCE,
    REMOVED,
    check_params,
    installed_minor,
)

ROOT = Path(__file__).resolve().parents[2]


def _surface() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("dbt_cli_surface", ROOT / "scripts" / "dbt_cli_surface.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.surface()


def test_the_table_matches_the_installed_dbt() -> None:
    """Each option the table says this minor has is in dbt's CLI, and each it lacks is not."""
    version = installed_minor()
    assert version is not None
    surface = _surface()
    for name, (since, commands) in ADDED.items():
        for command in commands if commands is not ALL else ["build", "run", "parse"]:
            has = name in surface[command]
            assert has == (version >= since), (name, command, version)
    for command, since in EMPTY_SINCE.items():
        assert ("empty" in surface[command]) == (version >= since), command
    for name, removed in REMOVED.items():
        assert (name in surface["build"]) == (version < removed), name


@pytest.mark.parametrize(
    ("command", "argv", "params", "version", "needs"),
    [
        ("run", ["run"], ["sample"], (1, 9), "--sample needs dbt-core 1.10"),
        (
            "build",
            ["build", "--event-time-start=2024-01-01"],
            [],
            (1, 8),
            "--event-time-start needs dbt-core 1.9",
        ),
        ("snapshot", ["snapshot", "--empty"], [], (1, 8), "--empty needs dbt-core 1.9"),
        ("seed", ["seed"], ["empty"], (1, 11), "--empty needs dbt-core 1.12"),
        ("build", ["build", "--enable-legacy-logger"], [], (1, 9), "removed in dbt-core 1.9"),
    ],
)
def test_an_option_the_dbt_lacks_names_the_version_that_has_it(
    command: str, argv: list[str], params: list[str], version: tuple[int, int], needs: str
) -> None:
    with pytest.raises(DbtConfigurationError, match=needs) as info:
        check_params(command, argv, params, version=version)
    assert f"this environment has dbt-core {version[0]}.{version[1]}" in str(info.value) or "removed" in needs


def test_options_the_dbt_has_pass() -> None:
    check_params("run", ["run", "--sample", "3 days"], ["event_time_start"], version=(1, 10))
    check_params("build", ["build", "--empty", "--no-sample"], [], version=(1, 12))
    check_params("run", ["run"], ["empty", "select"], version=(1, 8))  # run --empty is 1.8


def test_the_runner_refuses_before_dbt_drops_the_keyword(
    readonly_project: Path, warehouse: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt ignores an unknown keyword parameter; the runner raises instead of building every row."""
    monkeypatch.setenv("JAFFLE_SHOP_DUCKDB_PATH", str(warehouse))
    monkeypatch.setattr("airflow_dbt_provider.core.dbt_versions.installed_minor", lambda: (1, 9))
    runner = DbtRunner(readonly_project, cache_dir=cache_dir)
    with pytest.raises(DbtConfigurationError, match=r"--sample needs dbt-core 1\.10"):
        runner.invoke(["run"], sample="3 days")
