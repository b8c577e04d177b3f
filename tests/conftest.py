"""Suite-wide isolation: every test runs against its own Airflow home, never ``~/airflow``.

The environment is set here, at import time, because Airflow reads its configuration when it is
first imported and pytest imports this file before any test module.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import process_guard
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


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM and SIGHUP (CI's time limit, a closed terminal) end the session like Ctrl-C does.

    By default either signal kills pytest on the spot: no fixture teardown, no ``atexit``, and the
    Airflow deployments and PostgreSQL servers the suite started (each in its own session) live
    on. As a ``KeyboardInterrupt`` it makes pytest stop and tear its fixtures down. SIGINT keeps
    pytest's own handling (a second Ctrl-C still cuts a slow teardown short).
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread; whoever runs pytest elsewhere handles them
    process_guard.raise_on_signals((signal.SIGTERM, signal.SIGHUP))


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
