"""Copies of the example dbt project for tests, and helpers to check what dbt did to them.

The project ships in ``airflow_dbt_provider.testing``; tests run on copies so they can add
faulty nodes, and make the copies read-only to prove dbt never writes into the project. As root,
file modes do not stop writes, so :func:`tree_state` lets a test compare the tree before and after.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import airflow_dbt_provider.testing
from airflow_dbt_provider.core import DbtRunner

EXAMPLES = Path(airflow_dbt_provider.testing.__file__).resolve().parent
PROJECT_NAME = "jaffle_shop"
#: Node counts of the example project (seeds, models, tests, snapshot) that tests rely on.
BUILD_NODES = 22
SEED_NODES = 3
MODEL_NODES = 5
#: The example project's nodes as a DbtTaskGroup renders them: one task per seed, model, snapshot
#: and multi-parent test (single-parent tests run with their node).
TASK_GROUP_NODES = frozenset(
    {
        "raw_customers",
        "raw_orders",
        "raw_payments",
        "stg_customers",
        "stg_orders",
        "stg_payments",
        "orders",
        "customers",
        "customers_snapshot",
        "relationships_orders_customer_id__customer_id__ref_customers_",
    }
)


def copy_project(destination: Path) -> Path:
    """Copy the example project and its ``local:`` package (``../jaffle_utils``) under ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "package-lock.yml", "*.duckdb")
    for name in (PROJECT_NAME, "jaffle_utils"):
        shutil.copytree(EXAMPLES / name, destination / name, ignore=ignore)
    return destination / PROJECT_NAME


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write ``{relative path: text}`` under ``root`` (text dedented), creating directories."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


#: The models ``package_with_integration_tests`` builds, by unique id.
PACKAGE_TEST_MODELS = {"model.my_package.package_numbers", "model.my_package_integration_tests.doubled"}


def package_with_integration_tests(destination: Path) -> Path:
    """A dbt package (a macro, a model) and, inside it, the project that tests it; returns the package.

    ``integration_tests/packages.yml`` installs the package as ``local: ../`` and a helper
    package that lives inside the test project as ``local: helper/``: the layout of
    dbt-labs/dbt-project-evaluator's ``integration_tests``. Its model ``doubled`` uses both and
    holds ``(42, 42)`` once run; the profile reads the DuckDB path from ``JAFFLE_SHOP_DUCKDB_PATH``.
    """
    root = destination / "my_package"
    write_files(
        root,
        {
            "dbt_project.yml": """
                name: my_package
                version: "1.0.0"
                config-version: 2
                model-paths: ["models"]
                macro-paths: ["macros"]
            """,
            "macros/double.sql": "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n",
            "models/package_numbers.sql": "select 21 as n\n",
            "integration_tests/dbt_project.yml": """
                name: my_package_integration_tests
                version: "1.0.0"
                config-version: 2
                profile: integration_tests
                model-paths: ["models"]
            """,
            "integration_tests/packages.yml": """
                packages:
                  - local: ../
                  - local: helper/
            """,
            "integration_tests/profiles.yml": """
                integration_tests:
                  target: dev
                  outputs:
                    dev:
                      type: duckdb
                      path: "{{ env_var('JAFFLE_SHOP_DUCKDB_PATH') }}"
                      threads: 1
            """,
            "integration_tests/models/doubled.sql": (
                "select {{ my_package.double('n') }} as n, {{ helper.answer() }} as answer\n"
                "from {{ ref('my_package', 'package_numbers') }}\n"
            ),
            "integration_tests/helper/dbt_project.yml": """
                name: helper
                version: "1.0.0"
                config-version: 2
                macro-paths: ["macros"]
            """,
            "integration_tests/helper/macros/answer.sql": "{% macro answer() %}42{% endmacro %}\n",
        },
    )
    return root


def set_read_only(root: Path, read_only: bool = True) -> None:
    """Remove (or restore) write permission on every file and directory under ``root``."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        os.chmod(path, (mode & ~writable) if read_only else (mode | stat.S_IWUSR))


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root`` with its size and mtime, to detect any write."""
    return {
        str(path.relative_to(root)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


class RecordingHandler(logging.Handler):
    """Keeps the messages a logger emitted, for assertions on dbt's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    def clear(self) -> None:
        self.records.clear()


@contextmanager
def recording(logger: logging.Logger) -> Iterator[RecordingHandler]:
    """Record what ``logger`` emits (at INFO and above) for the block."""
    handler = RecordingHandler()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def make_runner(project: Path, warehouse: Path, cache_dir: Path, **kwargs: Any) -> DbtRunner:
    """A runner on ``project`` writing to ``warehouse`` (the profile reads the path from env)."""
    return DbtRunner(
        project,
        env={"JAFFLE_SHOP_DUCKDB_PATH": str(warehouse)},
        cache_dir=cache_dir,
        install_deps=True,
        logger=logging.getLogger("tests.dbt"),
        **kwargs,
    )
