"""Fixtures for the dbt Cloud operator, sensor, trigger and link tests: a real emulator over HTTPS.

One emulator per session (reset before each test) and a ``dbt_cloud_api_default`` connection to it
given as an ``AIRFLOW_CONN_*`` environment variable, with fast client retries so fault tests wait
fractions of a second. The token is long and distinctive so a leak anywhere is easy to spot.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.cloud_operators import CONN_ENV, SECRET_TOKEN, SPEED, connection_json

from airflow_dbt_provider.cloud import DbtCloudClient
from airflow_dbt_provider.hooks.dbt_cloud import DbtCloudHook
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(token=SECRET_TOKEN, speed=SPEED) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_session: DbtCloudEmulator, monkeypatch: pytest.MonkeyPatch) -> DbtCloudEmulator:
    """The session emulator, reset, with ``dbt_cloud_api_default`` pointing at it."""
    emulator_session.reset()
    emulator_session.set_speed(SPEED)
    monkeypatch.setenv(CONN_ENV, connection_json(emulator_session))
    return emulator_session


@pytest.fixture
def client(emulator: DbtCloudEmulator) -> Iterator[DbtCloudClient]:
    """A client of the emulator, to start and inspect runs the way a test needs."""
    with DbtCloudHook().get_client() as c:
        yield c
