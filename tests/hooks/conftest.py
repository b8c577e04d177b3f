"""Fixtures: the strict dbt Cloud emulator (see support/dbt_cloud_client.py)."""

from __future__ import annotations

from support.dbt_cloud_client import (  # noqa: F401 - fixtures
    emulator,
    strict_emulator_session,
)
