"""BigQuery: Airflow's ``google_cloud_platform`` connection.

Auth follows the Google provider's fields: extra ``key_path`` → ``method: service-account`` with
that keyfile; extra ``keyfile_dict`` (a JSON object or its text) → ``service-account-json`` with the
key inlined (its ``private_key`` moves to an env var); neither → ``oauth`` (application default
credentials). The dataset comes from extra ``dataset`` (or ``schema``), or the Schema field.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, pick

BIGQUERY_EXTRAS = (
    "location",
    "priority",
    "maximum_bytes_billed",
    "execution_project",
    "impersonate_service_account",
    "job_retries",
    "job_retry_deadline_seconds",
    "job_creation_timeout_seconds",
    "job_execution_timeout_seconds",
)


def _keyfile_dict(reader: ConnectionReader, raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise reader.error(
                "extra 'keyfile_dict' is not valid JSON (paste the service account key file)"
            ) from None
    if not isinstance(raw, dict) or "private_key" not in raw:
        raise reader.error(
            "extra 'keyfile_dict' must be a service account key (a JSON object with private_key)"
        )
    keyfile = dict(raw)
    keyfile["private_key"] = Secret(keyfile["private_key"])
    return keyfile


def bigquery_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-bigquery target from an Airflow ``google_cloud_platform`` connection."""
    reader = ConnectionReader(conn, "bigquery")
    keyfile_raw = reader.extra_get("keyfile_dict")
    key_path = reader.extra_get("key_path")
    if keyfile_raw and key_path:
        raise reader.error("set only one of extra 'keyfile_dict' and 'key_path'")
    keyfile = _keyfile_dict(reader, keyfile_raw) if keyfile_raw else None
    project = reader.extra_get("project") or (keyfile or {}).get("project_id")
    output: dict[str, Any] = {
        "type": "bigquery",
        "project": reader.require(project, "extra 'project' (the Google Cloud project id)"),
        "dataset": reader.require(
            reader.extra_get("dataset", "schema") or conn.schema,
            "the BigQuery dataset",
            "Set extra 'dataset' (or the Schema field).",
        ),
    }
    if keyfile is not None:
        output["method"] = "service-account-json"
        output["keyfile_json"] = keyfile
    elif key_path:
        output["method"] = "service-account"
        output["keyfile"] = key_path
    else:
        output["method"] = "oauth"
    output.update(pick(reader.extra, BIGQUERY_EXTRAS))
    return output
