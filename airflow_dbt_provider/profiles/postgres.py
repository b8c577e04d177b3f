"""PostgreSQL and Amazon Redshift (password auth): Airflow's ``postgres`` and ``redshift`` connections.

Airflow's PostgreSQL connection keeps the *database* in its Schema field, so the dbt schema comes
from the extra ``dbschema`` (the name astronomer-cosmos users know), then ``schema_name``, else
``public``. Extras dbt-postgres understands (``sslmode``, ``keepalives_idle``…) pass through.
"""

from __future__ import annotations

from typing import Any

from airflow_dbt_provider.profiles._base import ConnectionLike, ConnectionReader, Secret, as_int, pick

#: Extras passed through to dbt-postgres unchanged.
POSTGRES_EXTRAS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "keepalives_idle",
    "connect_timeout",
    "role",
    "search_path",
    "application_name",
    "retries",
)
#: Extras passed through to dbt-redshift unchanged.
REDSHIFT_EXTRAS = (
    "sslmode",
    "connect_timeout",
    "role",
    "ra3_node",
    "autocommit",
    "retries",
    "autocreate",
    "tcp_keepalive",
    "query_group",
)


def _common(reader: ConnectionReader, default_port: int, extras: tuple[str, ...]) -> dict[str, Any]:
    conn = reader.conn
    extra = reader.extra
    output: dict[str, Any] = {
        "host": reader.require(conn.host, "the Host field"),
        "port": as_int(reader, conn.port or default_port, "Port"),
        "user": reader.require(conn.login, "the Login field (the database user)"),
        "password": Secret(reader.require(conn.password, "the Password field")),
        "dbname": reader.require(
            conn.schema or reader.extra_get("dbname", "database"),
            "the database name",
            "Put it in the connection's Schema field (Airflow's place for the database) "
            "or in extra 'dbname'.",
        ),
        "schema": reader.extra_get("dbschema", "schema_name", default="public"),
    }
    for key, value in pick(extra, extras).items():
        output[key] = as_int(reader, value, key) if key in {"keepalives_idle", "connect_timeout"} else value
    return output


def postgres_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-postgres target from an Airflow ``postgres`` connection."""
    return {"type": "postgres", **_common(ConnectionReader(conn, "postgres"), 5432, POSTGRES_EXTRAS)}


def redshift_target(conn: ConnectionLike) -> dict[str, Any]:
    """A dbt-redshift target (``method: database``) from an Airflow ``redshift`` connection."""
    reader = ConnectionReader(conn, "redshift")
    if reader.extra_get("iam") not in (None, False, "false", "False"):
        raise reader.error(
            "IAM authentication is not mapped; use password auth, or a 'dbt_target' connection "
            "that carries the whole dbt-redshift target (method: iam, cluster_id, …)."
        )
    return {"type": "redshift", "method": "database", **_common(reader, 5439, REDSHIFT_EXTRAS)}
