"""OpenLineage datasets for a local dbt run, from its ``manifest.json`` and ``run_results.json``.

Used by the dbt Core operators' ``get_openlineage_facets_on_complete``. Everything OpenLineage is
imported lazily and only when the ``openlineage`` extra
(``apache-airflow-providers-openlineage``) is installed, so the operators work without it.

Naming follows the OpenLineage dataset naming conventions: the namespace names the warehouse
(``postgres://host:port`` when the profile came from an Airflow connection, otherwise
``<adapter>://<database>``, as dbt artifacts carry no host), the name is
``database.schema.table``.

* **outputs**: the models, seeds and snapshots the run built (status ``success``; ephemeral
  models build nothing);
* **inputs**: the sources and relations those nodes read that the run did not itself build.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_dbt_provider.assets import BUILT_STATUSES, RELATION_RESOURCE_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineageDataset:
    """One dataset in OpenLineage terms, before it becomes the client's ``Dataset``."""

    namespace: str
    name: str


def namespace(adapter_type: str, database: str | None, *, host: str | None, port: int | None) -> str:
    """The dataset namespace of a warehouse (OpenLineage naming: ``postgres://host:port``)."""
    adapter = adapter_type.lower()
    if host and adapter in ("postgres", "postgresql"):
        return f"postgres://{host}:{port or 5432}"
    if host:
        return f"{adapter}://{host}{f':{port}' if port else ''}"
    return f"{adapter}://{database or 'default'}"


def run_lineage(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    host: str | None = None,
    port: int | None = None,
) -> tuple[list[LineageDataset], list[LineageDataset]]:
    """``(inputs, outputs)`` of a run; see the module docstring for which nodes count."""
    adapter = str(manifest.get("metadata", {}).get("adapter_type") or "dbt")
    nodes: Mapping[str, Any] = manifest.get("nodes", {})
    sources: Mapping[str, Any] = manifest.get("sources", {})
    built_ids = [
        r.get("unique_id", "")
        for r in run_results.get("results") or []
        if r.get("status") in BUILT_STATUSES and _is_relation(nodes.get(r.get("unique_id", "")))
    ]
    built = set(built_ids)
    outputs = _unique(_dataset(nodes[uid], adapter, host, port) for uid in built_ids)
    upstream: list[Mapping[str, Any]] = []
    for uid in built_ids:
        for parent in nodes[uid].get("depends_on", {}).get("nodes", []):
            if parent in built:
                continue
            node = sources.get(parent) or nodes.get(parent)
            if node is not None and (parent in sources or _is_relation(node)):
                upstream.append(node)
    inputs = _unique(_dataset(node, adapter, host, port) for node in upstream)
    return inputs, outputs


def operator_lineage(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    host: str | None = None,
    port: int | None = None,
) -> Any:
    """An ``OperatorLineage`` for the OpenLineage provider, or ``None`` without the extra."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
    except ImportError:
        return None
    inputs, outputs = run_lineage(run_results, manifest, host=host, port=port)
    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in inputs],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in outputs],
    )


def parent_run_cause(task_instance: Any, max_length: int) -> str | None:
    """This task's OpenLineage run as the compact JSON a dbt Cloud run's ``cause`` can carry.

    ``{"parent": {"run": {"runId": ...}, "job": {"namespace": ..., "name": ...}}, "root": {...}}``:
    what the official provider's ``openlineage_inject_parent_job_info`` writes, so a consumer
    reading dbt Cloud runs can attach a ``ParentRunFacet`` linking the run to the Airflow task.
    The ``root`` block is dropped when both do not fit in ``max_length``; ``None`` when even the
    parent alone does not fit or the OpenLineage provider is not installed.
    """
    try:
        from airflow.providers.openlineage.plugins import macros
    except ImportError:
        return None
    # Lineage must never fail the task: some provider versions' macros read attributes the
    # running Airflow's task instance lacks (e.g. ``dag_run`` on Airflow 3.1).
    try:
        parent = {
            "run": {"runId": macros.lineage_run_id(task_instance)},
            "job": {
                "namespace": macros.lineage_job_namespace(),
                "name": macros.lineage_job_name(task_instance),
            },
        }
    except Exception as exc:
        log.warning("OpenLineage parent run info unavailable (%s); the run's cause omits it", exc)
        return None
    candidates: list[dict[str, Any]] = [{"parent": parent}]
    if hasattr(macros, "lineage_root_run_id"):  # the root macros came with later provider versions
        try:
            root = {
                "run": {"runId": macros.lineage_root_run_id(task_instance)},
                "job": {
                    "namespace": macros.lineage_root_job_namespace(task_instance),
                    "name": macros.lineage_root_job_name(task_instance),
                },
            }
        except Exception as exc:
            log.warning("OpenLineage root run info unavailable (%s); the run's cause names the parent", exc)
        else:
            candidates.insert(0, {"parent": parent, "root": root})
    for payload in candidates:
        text = json.dumps(payload, separators=(",", ":"))
        if len(text) <= max_length:
            return text
    return None


def openlineage_enabled() -> bool:
    """Whether the OpenLineage provider is installed and configured to emit events.

    The operators keep ``manifest.json`` for lineage only then: writing it costs a JSON dump of
    the whole project, which a deployment without OpenLineage should not pay for.
    """
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    try:
        return not is_disabled()
    except Exception:  # a broken OpenLineage config must not fail the dbt task
        return False


def _is_relation(node: Mapping[str, Any] | None) -> bool:
    return (
        node is not None
        and node.get("resource_type") in RELATION_RESOURCE_TYPES
        and node.get("config", {}).get("materialized") != "ephemeral"
    )


def _dataset(node: Mapping[str, Any], adapter: str, host: str | None, port: int | None) -> LineageDataset:
    identifier = node.get("alias") or node.get("identifier") or node.get("name")
    database = node.get("database")
    name = ".".join(str(part) for part in (database, node.get("schema"), identifier) if part)
    return LineageDataset(namespace(adapter, database, host=host, port=port), name)


def _unique(datasets: Iterable[LineageDataset]) -> list[LineageDataset]:
    return list(dict.fromkeys(datasets))
