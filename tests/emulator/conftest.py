"""Fixtures for the emulator's own tests: one strict and one lenient server per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.emulator_client import make_client

from airflow_dbt_provider.testing.dbt_cloud_emulator import DbtCloudEmulator

SPEED = 20.0  # a default-world job (~8.5 emulated seconds) finishes in under half a second


@pytest.fixture(scope="session")
def strict_server() -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(speed=SPEED) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def lenient_server() -> Iterator[DbtCloudEmulator]:
    with DbtCloudEmulator(speed=SPEED, lenient=True) as emulator:
        yield emulator


@pytest.fixture
def emu(strict_server: DbtCloudEmulator) -> DbtCloudEmulator:
    strict_server.reset()
    strict_server.set_speed(SPEED)
    return strict_server


@pytest.fixture
def lenient_emu(lenient_server: DbtCloudEmulator) -> DbtCloudEmulator:
    lenient_server.reset()
    lenient_server.set_speed(SPEED)
    return lenient_server


@pytest.fixture
def client(emu: DbtCloudEmulator) -> Iterator[httpx.Client]:
    with make_client(emu) as c:
        yield c


@pytest.fixture
def lenient_client(lenient_emu: DbtCloudEmulator) -> Iterator[httpx.Client]:
    with make_client(lenient_emu) as c:
        yield c
