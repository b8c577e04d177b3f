"""The PostgreSQL the suite starts is real: password auth over TCP works, a wrong password does not."""

from __future__ import annotations

import psycopg2
import pytest
from support.postgres import PostgresServer


def test_server_accepts_password_and_rejects_a_wrong_one(postgres_server: PostgresServer) -> None:
    db = postgres_server.create_database("support_check")
    assert postgres_server.execute("select current_database()", dbname=db) == [(db,)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password="wrong",
            dbname=db,
        )
