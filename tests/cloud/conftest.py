"""Fixtures: strict and lenient dbt Cloud emulators over HTTPS, and clients pointed at them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dbt_cloud_client import (  # noqa: F401 - fixtures
    any_emulator,
    emulator,
    lenient_emulator_session,
    settings_for,
    strict_emulator_session,
)

from airflow_dbt_provider.cloud import DbtCloudClient
from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator


@pytest.fixture
def client(emulator: DbtCloudEmulator) -> Iterator[DbtCloudClient]:  # noqa: F811
    with DbtCloudClient(settings_for(emulator)) as c:
        yield c


@pytest.fixture
def any_client(any_emulator: DbtCloudEmulator) -> Iterator[DbtCloudClient]:  # noqa: F811
    with DbtCloudClient(settings_for(any_emulator)) as c:
        yield c
