"""Fixtures for DbtTaskGroup tests: one extended copy of the example project, parsed once per session.

The copy adds what the bundled project lacks for selection tests: an ephemeral model (folded into
its consumer), tags, and a source with a freshness criterion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dbt_projects import copy_project

from airflow_dbt_provider.core import DbtRunner

EXTRA_FILES = {
    "models/marts/order_stats.sql": (
        "{{ config(materialized='ephemeral') }}\n"
        "select customer_id, count(*) as n_orders from {{ ref('orders') }} group by 1\n"
    ),
    "models/marts/customer_order_stats.sql": (
        "{{ config(tags=['nightly']) }}\n"
        "select c.customer_id, s.n_orders from {{ ref('stg_customers') }} c\n"
        "left join {{ ref('order_stats') }} s using (customer_id)\n"
    ),
    "models/staging/sources.yml": (
        "version: 2\nsources:\n  - name: raw\n    schema: main_raw\n"
        "    loaded_at_field: \"cast('2020-01-01' as timestamp)\"\n"
        "    freshness: {warn_after: {count: 100000, period: day}}\n"
        "    tables:\n      - name: raw_customers\n"
    ),
    "selectors.yml": (
        "selectors:\n  - name: nightly_marts\n    definition:\n      union:\n"
        "        - method: tag\n          value: nightly\n"
        "        - intersection:\n            - {method: path, value: models/marts}\n"
        "            - {method: config.materialized, value: table}\n"
        "  - name: changed\n    definition: {method: state, value: modified}\n"
    ),
    "models/staging/stg_raw_customers.sql": (
        "{{ config(tags=['nightly']) }}\nselect * from {{ source('raw', 'raw_customers') }}\n"
    ),
}


def write_extras(project: Path) -> None:
    for relative, text in EXTRA_FILES.items():
        (project / relative).write_text(text)


@pytest.fixture(scope="session")
def tg_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extended example project (no target/ yet)."""
    project = copy_project(tmp_path_factory.mktemp("tg-project"))
    write_extras(project)
    return project


@pytest.fixture(scope="session")
def tg_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tg-warehouse") / "jaffle_shop.duckdb"


@pytest.fixture(scope="session")
def tg_runner(
    tg_project: Path, tg_warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtRunner]:
    """One runner on the project, keeping its manifest: reference ``dbt ls`` calls parse once."""
    with DbtRunner(
        tg_project,
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(tg_warehouse)},
        cache_dir=tmp_path_factory.mktemp("tg-parse-cache"),
        install_deps=True,
        logger=logging.getLogger("tests.dbt.task_groups"),
    ) as runner:
        yield runner


@pytest.fixture(scope="session")
def tg_manifest(tg_project: Path, tg_runner: DbtRunner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``manifest.json`` of the project, written by ``dbt parse``, outside the project."""
    out = tmp_path_factory.mktemp("tg-manifest")
    result = tg_runner.invoke(["parse"], capture=("manifest.json",))
    assert result.success
    path = out / "manifest.json"
    path.write_bytes(result.captured["manifest.json"])
    return path
