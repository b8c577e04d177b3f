"""Emulator fixtures for the dbt Cloud client and hook tests (imported by their conftest files).

One strict and one lenient emulator per session, reset before each test; the token is a long,
distinctive value so a leak anywhere is easy to find.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_dbt_provider.cloud import ClientSettings, RetryPolicy
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

SECRET_TOKEN = "dbtc_SeCrEt-3f9a1c7e5b2d4f60-never-log-me"
#: Fast retries so fault tests wait fractions of a second, not the production backoff.
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=2.0)


def _emulator(lenient: bool) -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(token=SECRET_TOKEN, lenient=lenient, speed=10) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def strict_emulator_session() -> Iterator[DbtCloudEmulator]:
    yield from _emulator(lenient=False)


@pytest.fixture(scope="session")
def lenient_emulator_session() -> Iterator[DbtCloudEmulator]:
    yield from _emulator(lenient=True)


def fresh(emulator: DbtCloudEmulator) -> DbtCloudEmulator:
    emulator.reset()
    emulator.set_speed(10)
    return emulator


@pytest.fixture
def emulator(strict_emulator_session: DbtCloudEmulator) -> DbtCloudEmulator:
    """The strict emulator (answers exactly as the spec says), reset."""
    return fresh(strict_emulator_session)


@pytest.fixture(params=["strict", "lenient"])
def any_emulator(
    request: pytest.FixtureRequest,
    strict_emulator_session: DbtCloudEmulator,
    lenient_emulator_session: DbtCloudEmulator,
) -> DbtCloudEmulator:
    """Each emulator mode in turn: strict, then lenient (nulls and omissions like the live API)."""
    return fresh(strict_emulator_session if request.param == "strict" else lenient_emulator_session)


def settings_for(emulator: DbtCloudEmulator, **overrides: object) -> ClientSettings:
    values: dict[str, object] = {
        "account_id": emulator.account_id,
        "token": emulator.token,
        "access_url": emulator.base_url,
        "verify": str(emulator.ca_cert_path),
        "retry": FAST_RETRY,
        "timeout": 10.0,
    }
    values.update(overrides)
    return ClientSettings(**values)  # type: ignore[arg-type]


def connection_json(emulator: DbtCloudEmulator, conn_type: str = "dbt_cloud_api", **overrides: Any) -> str:
    """An ``AIRFLOW_CONN_*`` value for a connection to the emulator (fast retries, its CA bundle)."""
    conn: dict[str, Any] = {
        "conn_type": conn_type,
        "host": emulator.base_url,
        "login": str(emulator.account_id),
        "password": emulator.token,
        "extra": {
            "ca_bundle": str(emulator.ca_cert_path),
            "retry_max_attempts": 2,
            "retry_backoff_base": 0.01,
            "timeout": 10,
        },
    }
    conn.update(overrides)
    return json.dumps(conn)
