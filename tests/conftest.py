"""Suite-wide isolation: every test runs against its own Airflow home, never ``~/airflow``.

The environment is set here, at import time, because Airflow reads its configuration when it is
first imported and pytest imports this file before any test module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="adp-airflow-home-"))


def _isolate_airflow() -> None:
    # A fixed key: the DB is created once per session and connections stored with it must decrypt.
    fernet_key = "L9nsAqWf4pMh3CtAV1PtVeV2t0XKy1_yRh2bW6eHwXk="
    settings = {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }
    os.environ.update(settings)
    os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)


_isolate_airflow()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The suite's private ``AIRFLOW_HOME``."""
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata DB in the suite's Airflow home, created once per session."""
    marker = airflow_home / ".migrated"
    if not marker.exists():
        airflow = Path(sys.executable).parent / "airflow"
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)
        marker.touch()
    return airflow_home / "airflow.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on loopback for the whole session (see support/postgres.py)."""
    with PostgresServer() as server:
        yield server
