"""The cross-process partial-parse cache: keys, atomic copies, and a real dbt parse using it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.dbt_projects import copy_project, make_runner, recording

from airflow_dbt_provider.core.parse_cache import (
    CACHE_DIR_ENV,
    PARTIAL_PARSE_FILE,
    ParseCache,
    cache_key,
    default_cache_dir,
)

FULL_PARSE = "Unable to do partial parsing because saved manifest not found. Starting full parse."


def _key(project: Path, **changes: object) -> str:
    inputs: dict = {
        "project_dir": project,
        "profiles_yml": b"jaffle_shop: {}",
        "profile": None,
        "target": "dev",
        "vars": {"a": 1},
    }
    inputs.update(changes)
    return cache_key(**inputs)


def test_key_changes_with_every_parse_time_input(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "one")
    other = copy_project(tmp_path / "two")
    base = _key(project)
    assert _key(project) == base
    assert _key(project, vars={"a": 1}) == base
    changed = {
        _key(project, vars={"a": 2}),
        _key(project, target="prod"),
        _key(project, profile="other"),
        _key(project, profiles_yml=b"jaffle_shop: {target: x}"),
        _key(other),
    }
    assert base not in changed
    assert len(changed) == 5
    (project / "dbt_project.yml").write_text((project / "dbt_project.yml").read_text() + "\n# changed\n")
    assert _key(project) != base


def test_store_and_restore_copy_atomically(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path / "cache")
    produced, consumer = tmp_path / "run1" / "target", tmp_path / "run2" / "target"
    assert cache.restore("k", consumer) is False
    assert cache.store("k", produced) is False  # dbt wrote nothing
    produced.mkdir(parents=True)
    (produced / PARTIAL_PARSE_FILE).write_bytes(b"manifest-bytes")
    assert cache.store("k", produced) is True
    assert cache.restore("k", consumer) is True
    assert (consumer / PARTIAL_PARSE_FILE).read_bytes() == b"manifest-bytes"
    leftovers = [p.name for p in cache.path_for("k").parent.iterdir()]
    assert leftovers == [PARTIAL_PARSE_FILE]  # no temporary files left behind


def test_cache_dir_comes_from_env_then_airflow_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".dbt-provider-cache"
    monkeypatch.delenv("AIRFLOW_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "airflow-dbt-provider"


def test_a_new_process_parses_partially_from_the_cache(tmp_path: Path) -> None:
    """Fresh runners stand in for new task processes: only the first parses in full."""
    project = copy_project(tmp_path / "project")
    cache = tmp_path / "cache"
    logger = logging.getLogger("tests.dbt")
    with recording(logger) as log:
        assert make_runner(project, tmp_path / "w.duckdb", cache).parse().success
        assert FULL_PARSE in log.lines
        log.clear()
        assert make_runner(project, tmp_path / "w.duckdb", cache).parse().success
        assert not any("Unable to do partial parsing" in line for line in log.lines), log.lines
    assert len(list((cache / "partial-parse").iterdir())) == 1
