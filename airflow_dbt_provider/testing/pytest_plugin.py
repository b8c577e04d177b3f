"""pytest fixtures for testing DAGs and clients against the dbt Cloud emulator, offline.

Enable in a ``conftest.py`` with ``pytest_plugins = ["airflow_dbt_provider.testing.pytest_plugin"]``
(or ``pytest -p airflow_dbt_provider.testing.pytest_plugin``):

* ``dbt_cloud_emulator_session`` — one HTTPS emulator for the whole session (default world).
* ``dbt_cloud_emulator`` — the same server, reset before each test (seeded world, empty request
  log, no faults) and at speed 10, so a default-world job finishes in about a second.

One server per session keeps tests fast: starting one costs a certificate and a thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

TEST_SPEED = 10.0


@pytest.fixture(scope="session")
def dbt_cloud_emulator_session() -> Iterator[DbtCloudEmulator]:
    """A session-wide emulator (HTTPS, default world, strict spec answers)."""
    with DbtCloudEmulator(speed=TEST_SPEED) as emulator:
        yield emulator


@pytest.fixture
def dbt_cloud_emulator(dbt_cloud_emulator_session: DbtCloudEmulator) -> DbtCloudEmulator:
    """The session emulator, reset to the seeded world and speed 10 for this test."""
    dbt_cloud_emulator_session.reset()
    dbt_cloud_emulator_session.set_speed(TEST_SPEED)
    return dbt_cloud_emulator_session
