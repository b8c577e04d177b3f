"""Runs inside ``.venv-adapters/``: validate generated dbt targets with each adapter's own classes.

Input (stdin): a JSON list of ``{"name", "profile_name", "target_name", "output", "env"}``.
Output, to the file named by the first argument (dbt logs to stdout): a JSON list of ``{"name",
"ok", "error", "credentials_class", "connection_keys", "secrets_delivered", "deep_check"}``.
Secret values are never written out: only whether each one reached the credentials object, and
dbt's own ``_connection_keys()`` (what ``dbt debug`` shows).

Beyond dbt's profile loading (env_var rendering, alias translation, schema validation, the
credentials dataclass), ``deep_check`` exercises the adapter code that consumes the credentials
without a network: Snowflake key parsing, BigQuery service-account credentials, Databricks'
``validate_creds``, Trino's authentication object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from airflow_dbt_provider.profiles import DbtTarget, ProfileMappingError
from airflow_dbt_provider.profiles.validate import validate_target


def _leaves(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_leaves(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_leaves(v) for v in value)) if value else set()
    return {str(value)} if value is not None else set()


def _deep_check(creds: Any) -> str:
    kind = creds.type
    if kind == "snowflake":
        if creds.private_key or creds.private_key_path:
            der = creds._get_private_key()
            return f"private key loaded ({len(der)} DER bytes)"
        if creds.authenticator != "oauth":
            return "auth_args: " + ",".join(sorted(creds.auth_args()))
        return "oauth (token exchange needs the network)"
    if kind == "bigquery":
        if str(creds.method) in ("service-account-json", "service-account"):
            from dbt.adapters.bigquery.credentials import create_google_credentials

            google = create_google_credentials(creds)
            return f"{type(google).__name__}:{google.service_account_email}"
        return f"method {creds.method} (application default credentials)"
    if kind == "databricks":
        creds.validate_creds()
        return "validate_creds ok"
    if kind == "trino":
        scheme = getattr(creds.http_scheme, "value", creds.http_scheme)
        return f"{type(creds.trino_auth()).__name__}:{scheme}"
    return "credentials built"


def check(case: dict[str, Any]) -> dict[str, Any]:
    target = DbtTarget(case["profile_name"], case["target_name"], case["output"], case["env"])
    result: dict[str, Any] = {"name": case["name"], "ok": False, "error": None}
    try:
        creds = validate_target(target)
    except ProfileMappingError as exc:
        result["error"] = str(exc)
        return result
    leaves = _leaves(creds.to_dict(omit_none=True))
    result["credentials_class"] = type(creds).__name__
    keys = {*creds._connection_keys(), "database", "schema"}  # the base Credentials fields, always
    result["connection_keys"] = {
        k: json.loads(json.dumps(getattr(creds, k, None), default=str)) for k in keys
    }
    result["secrets_delivered"] = {name: value in leaves for name, value in target.env.items()}
    try:
        result["deep_check"] = _deep_check(creds)
    except Exception as exc:  # report, never print the credentials
        result["error"] = f"deep check failed: {type(exc).__name__}: {exc}"
        return result
    result["ok"] = True
    return result


def main() -> None:
    cases = json.load(sys.stdin)
    results = [check(case) for case in cases]
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main()
