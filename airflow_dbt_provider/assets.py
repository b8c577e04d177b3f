"""One Asset URI builder for every dbt relation, shared by the dbt Core and dbt Cloud operators.

The scheme is chosen so that Airflow's validation accepts the URI and so that the same table gets
the same URI as other providers give it, whenever that is possible:

* ``postgres://host:port/database/schema/table`` and ``trino://host:port/catalog/schema/table``
  when the host is known (a local run whose profile came from an Airflow connection). These are
  the formats the postgres and trino providers register and validate (AIP-60), so an Asset
  produced by dbt and one produced by a SQL operator on the same table are the same Asset.
* ``bigquery://project/dataset/table``: BigQuery needs no host, so every run can use the Google
  provider's format.
* ``dbt://<adapter>/<database>/<schema>/<identifier>`` otherwise: dbt artifacts (and so dbt Cloud
  runs) carry no host, and for several warehouses no provider defines a URI format. This provider
  registers the ``dbt`` scheme with :func:`sanitize_uri`, so Airflow validates and normalises it.

Path segments are percent-encoded, so a ``/`` or space in an identifier cannot change the shape.
Identifier case is kept as the warehouse reports it (Snowflake's upper case stays upper case).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote

#: Our registered scheme for relations whose host is unknown or whose warehouse has no provider scheme.
DBT_SCHEME = "dbt"
#: Resource types that build a relation in the warehouse.
RELATION_RESOURCE_TYPES = frozenset({"model", "seed", "snapshot"})
#: ``run_results.json`` statuses of a relation that was (re)built.
BUILT_STATUSES = frozenset({"success"})
#: Adapters that share the PostgreSQL wire protocol and URI format of the postgres provider.
_POSTGRES_ADAPTERS = frozenset({"postgres", "postgresql"})
#: Placeholder for an empty path segment, as the postgres provider does for its schema.
_EMPTY = "default"


class BuiltAsset(NamedTuple):
    """A relation a dbt run built, and its Asset URI."""

    unique_id: str
    uri: str


def _segment(value: str | None) -> str:
    text = (value or "").strip()
    return quote(text, safe="") if text else _EMPTY


def asset_uri(
    adapter_type: str,
    database: str | None,
    schema: str | None,
    identifier: str,
    *,
    host: str | None = None,
    port: int | None = None,
) -> str:
    """The Asset URI of one relation (see the module docstring for the scheme rules).

    ``host``/``port`` are the warehouse's address when known (from the profile's connection);
    never pass credentials — they do not belong in a URI.
    """
    adapter = (adapter_type or "").strip().lower()
    if not adapter:
        raise ValueError("asset_uri needs the dbt adapter type (e.g. 'postgres'), got an empty value")
    if not (identifier or "").strip():
        raise ValueError("asset_uri needs the relation's identifier (table or view name)")
    path = "/".join(_segment(part) for part in (database, schema, identifier))
    if host and adapter in _POSTGRES_ADAPTERS:
        return f"postgres://{host}:{port or 5432}/{path}"
    if host and adapter == "trino":
        return f"trino://{host}:{port or 8080}/{path}"
    if adapter == "bigquery" and (database or "").strip():
        return f"bigquery://{_segment(database)}/{_segment(schema)}/{_segment(identifier)}"
    return f"{DBT_SCHEME}://{quote(adapter, safe='')}/{path}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normaliser for ``dbt://`` URIs (registered under ``asset-uris`` in provider info).

    A valid URI names the adapter as its host and has exactly database, schema and identifier in
    its path; the adapter is lower-cased so ``dbt://Postgres/...`` and ``dbt://postgres/...`` match.
    """
    if not uri.netloc:
        raise ValueError("URI format dbt:// must name the dbt adapter: dbt://<adapter>/<db>/<schema>/<name>")
    if uri.username or uri.password or uri.port is not None:
        raise ValueError("URI format dbt:// takes the adapter type as host, without user, password or port")
    parts = uri.path.split("/")
    if len(parts) != 4 or not all(parts[1:]):  # leading slash, database, schema, identifier
        raise ValueError("URI format dbt:// must be dbt://<adapter>/<database>/<schema>/<identifier>")
    return uri._replace(netloc=uri.netloc.lower())


def create_asset(*, adapter_type: str, database: str, schema: str, identifier: str) -> Any:
    """An Airflow ``Asset`` for a relation, named by its URI (the ``asset-uris`` factory)."""
    from airflow.sdk import Asset

    return Asset(uri=asset_uri(adapter_type, database, schema, identifier))


def built_assets(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    adapter_type: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> list[BuiltAsset]:
    """The URIs of the models, seeds and snapshots a run built successfully, in run order.

    Reads dbt's ``run_results.json`` and ``manifest.json`` (as dicts). Ephemeral models build no
    relation and are left out; so are failed, skipped and test nodes. ``adapter_type`` defaults to
    the manifest's ``metadata.adapter_type``.
    """
    adapter = adapter_type or manifest.get("metadata", {}).get("adapter_type")
    if not adapter:
        raise ValueError("manifest.json has no metadata.adapter_type; pass adapter_type explicitly")
    nodes: Mapping[str, Any] = manifest.get("nodes", {})
    built: list[BuiltAsset] = []
    seen: set[str] = set()
    for result in _results(run_results):
        unique_id = result.get("unique_id", "")
        node = nodes.get(unique_id)
        if node is None or unique_id in seen or result.get("status") not in BUILT_STATUSES:
            continue
        if node.get("resource_type") not in RELATION_RESOURCE_TYPES:
            continue
        if node.get("config", {}).get("materialized") == "ephemeral":
            continue
        identifier = node.get("alias") or node.get("identifier") or node.get("name")
        uri = asset_uri(adapter, node.get("database"), node.get("schema"), identifier, host=host, port=port)
        built.append(BuiltAsset(unique_id, uri))
        seen.add(unique_id)
    return built


def _results(run_results: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    results = run_results.get("results")
    if not isinstance(results, list):
        raise ValueError("run_results.json has no 'results' list; is this a dbt run_results artifact?")
    return results


def emit_asset_events(
    context: Mapping[str, Any],
    alias: str,
    built: Iterable[BuiltAsset],
    log: Any,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """One Asset event per built relation through the task's ``AssetAlias`` outlet ``alias``."""
    from airflow.sdk import Asset, AssetAlias

    events = context["outlet_events"][AssetAlias(name=alias)]
    count = 0
    for asset in built:
        events.add(Asset(uri=asset.uri), extra={**(extra or {}), "unique_id": asset.unique_id})
        count += 1
    log.info("emitted %d Asset event(s) through alias %r", count, alias)
