"""The ``dbt_target`` connection type: a whole dbt target in the extra, for any dbt adapter.

Why: no mapping can keep up with every adapter and auth method. This connection type carries
the target verbatim — ``{"target": {...}}`` or the target's fields directly — and the standard
fields fill the usual keys when the target leaves them out (Host → ``host``, Port → ``port``, Login
→ ``user``, Password → ``password``, Schema → ``schema``). Secrets are still moved to env vars by
name (``password``, ``token``, ``private_key``, ``*_secret``…); a value that is already a Jinja
expression such as ``{{ env_var('MY_TOKEN') }}`` is left as written.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret

CONN_TYPE = "dbt_target"
#: Extra keys that belong to the connection form, not to the target.
FORM_ONLY_KEYS = ("target", "adapter_type")


def generic_target(conn: ConnectionLike) -> dict[str, Any]:
    """The dbt target carried by a ``dbt_target`` connection."""
    reader = ConnectionReader(conn, "dbt_target")
    extra = {k.removeprefix(f"extra__{CONN_TYPE}__"): v for k, v in reader.extra.items()}
    if "target" in extra:
        target = extra["target"]
        if not isinstance(target, dict):
            raise reader.error("extra 'target' must be a JSON object holding the dbt target")
        output = dict(target)
    else:
        output = {k: v for k, v in extra.items() if k not in FORM_ONLY_KEYS}
    if extra.get("adapter_type") and not output.get("type"):
        output["type"] = extra["adapter_type"]
    reader.require(
        output.get("type"),
        "the dbt adapter type",
        "Set the 'dbt adapter type' field, or 'type' in the target JSON (e.g. \"clickhouse\").",
    )
    standard = {"host": conn.host, "port": conn.port, "user": conn.login, "schema": conn.schema}
    for key, value in standard.items():
        if value not in (None, "") and key not in output:
            output[key] = value
    if conn.password and "password" not in output:
        output["password"] = Secret(conn.password)
    return output
