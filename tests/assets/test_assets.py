"""The shared Asset URI builder: the formats, Airflow's acceptance of them, and built relations.

Airflow validates a URI through the normaliser its provider registered for the scheme; the
postgres provider is installed in the test venv, and this provider registers ``dbt``. So every
URI here goes through ``airflow.sdk.Asset`` and must come out unchanged (already normalised).
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset

from airflow_dbt_provider.assets import BuiltAsset, asset_uri, built_assets
from airflow_dbt_provider.testing import __file__ as testing_init

ARTIFACTS = Path(testing_init).parent / "emulator_artifacts"


def _artifact(kind: str, name: str) -> dict[str, Any]:
    with gzip.open(ARTIFACTS / kind / f"{name}.json.gz") as handle:
        return json.load(handle)


def test_airflow_uses_the_registered_handlers() -> None:
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:  # Airflow < 3.3: the task runtime reads them from the ProvidersManager
        from airflow.providers_manager import ProvidersManager as Manager  # type: ignore[assignment]

    handlers = Manager().asset_uri_handlers
    assert handlers["dbt"].__module__ == "airflow_dbt_provider.assets"
    assert handlers["postgres"].__module__ == "airflow.providers.postgres.assets.postgres"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (
            ("postgres", "shop", "analytics", "customers"),
            {"host": "db.internal", "port": 5433},
            "postgres://db.internal:5433/shop/analytics/customers",
        ),
        (
            ("postgres", "shop", "analytics", "customers"),
            {"host": "db.internal"},
            "postgres://db.internal:5432/shop/analytics/customers",
        ),
        (("postgres", "shop", "analytics", "customers"), {}, "dbt://postgres/shop/analytics/customers"),
        (
            ("trino", "iceberg", "marts", "orders"),
            {"host": "trino", "port": 443},
            "trino://trino:443/iceberg/marts/orders",
        ),
        (("bigquery", "acme-prod", "marts", "orders"), {}, "bigquery://acme-prod/marts/orders"),
        (
            ("Snowflake", "RAW", "ANALYTICS", "ORDERS"),
            {"host": "ignored.example"},
            "dbt://snowflake/RAW/ANALYTICS/ORDERS",
        ),
        (
            ("duckdb", "jaffle_shop", "main", "my table/v2"),
            {},
            "dbt://duckdb/jaffle_shop/main/my%20table%2Fv2",
        ),
        (("spark", None, "default_schema", "t"), {}, "dbt://spark/default/default_schema/t"),
    ],
)
def test_uri_formats_are_accepted_unchanged_by_airflow(
    args: tuple[str, ...], kwargs: dict[str, Any], expected: str
) -> None:
    uri = asset_uri(*args, **kwargs)
    assert uri == expected
    assert Asset(uri=uri).uri == uri


def test_dbt_scheme_is_validated_and_normalised_by_our_handler() -> None:
    assert Asset(uri="dbt://DuckDB/db/main/t").uri == "dbt://duckdb/db/main/t"
    for bad in (
        "dbt://duckdb/db/t",
        "dbt://duckdb/db/main/t/extra",
        "dbt:///db/main/t",
        "dbt://duckdb:1/d/s/t",
    ):
        with pytest.raises(ValueError, match="URI format dbt://"):
            Asset(uri=bad)


def test_postgres_provider_rejects_what_we_never_build() -> None:
    """Why the host matters: without one the postgres provider refuses the URI, so we use dbt://."""
    with pytest.raises(ValueError, match="must contain a host"):
        Asset(uri="postgres:///shop/analytics/customers")


def test_bad_input_is_explained() -> None:
    with pytest.raises(ValueError, match="adapter type"):
        asset_uri("", "d", "s", "t")
    with pytest.raises(ValueError, match="identifier"):
        asset_uri("postgres", "d", "s", " ")
    with pytest.raises(ValueError, match="'results' list"):
        built_assets({}, {"metadata": {"adapter_type": "duckdb"}})
    with pytest.raises(ValueError, match="adapter_type"):
        built_assets({"results": []}, {"metadata": {}})


def test_built_assets_of_a_successful_build() -> None:
    run_results = _artifact("success", "run_results")
    assets = built_assets(run_results, _artifact("success", "manifest"))
    assert all(isinstance(a, BuiltAsset) for a in assets)
    built = {
        "seed.jaffle_shop.raw_payments",
        "seed.jaffle_shop.raw_customers",
        "seed.jaffle_shop.raw_orders",
        "model.jaffle_shop.stg_customers",
        "model.jaffle_shop.stg_orders",
        "model.jaffle_shop.stg_payments",
        "model.jaffle_shop.orders",
        "snapshot.jaffle_shop.customers_snapshot",
        "model.jaffle_shop.customers",
    }
    # Every built node once (no test), in dbt's run order (which its threads decide, so read it back).
    run_order = [r["unique_id"] for r in run_results["results"] if r["unique_id"] in built]
    assert [a.unique_id for a in assets] == run_order
    assert set(run_order) == built
    assert dict(assets)["seed.jaffle_shop.raw_orders"] == "dbt://duckdb/jaffle_shop/main_raw/raw_orders"
    assert all(Asset(uri=uri).uri == uri for _, uri in assets)


def test_failed_and_skipped_nodes_and_ephemeral_models_are_left_out() -> None:
    run_results, manifest = _artifact("fail", "run_results"), _artifact("fail", "manifest")
    ids = {a.unique_id for a in built_assets(run_results, manifest)}
    assert "model.jaffle_shop.customers" not in ids  # skipped after a failing test
    assert "model.jaffle_shop.orders" in ids
    assert not any(i.startswith("test.") for i in ids)
    ephemeral = copy.deepcopy(manifest)
    ephemeral["nodes"]["model.jaffle_shop.orders"]["config"]["materialized"] = "ephemeral"
    assert "model.jaffle_shop.orders" not in {a.unique_id for a in built_assets(run_results, ephemeral)}


def test_host_turns_uris_into_the_postgres_providers_format() -> None:
    run_results, manifest = _artifact("success", "run_results"), _artifact("success", "manifest")
    assets = built_assets(run_results, manifest, adapter_type="postgres", host="10.0.0.5", port=6432)
    assert (
        dict(assets)["model.jaffle_shop.customers"] == "postgres://10.0.0.5:6432/jaffle_shop/main/customers"
    )
    assert all(Asset(uri=uri).uri == uri for _, uri in assets)
